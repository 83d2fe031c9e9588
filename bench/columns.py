"""What every part of the report shares: the columns of a run (direct, hxgw,
hxgw@REV with `--compare`, baseline, nginx, then the ratio columns) and the small
arithmetic on figures that may be missing (None, NaN).

A run with `--compare REV` has a column `hxgw@REV` (the label is in
`meta.compare.label`) beside `hxgw`, and a last column `new/old`: hxgw over
hxgw@REV for figures, new minus old (in ms) for added latencies."""

from __future__ import annotations

import math
from typing import Any

TARGETS = ("direct", "hxgw", "baseline", "nginx")
PROXIES = ("hxgw", "baseline", "nginx")
HEAD = ["direct", "hxgw", "baseline", "nginx", "hxgw/base", "hxgw/nginx"]
NEW_OLD = "new/old"


def old_label(results: dict[str, Any]) -> str | None:
    """The column of the --compare revision (e.g. 'hxgw@7cb0bba'), or None."""
    return (results.get("meta", {}).get("compare") or {}).get("label")


def targets_of(results: dict[str, Any]) -> tuple[str, ...]:
    old = old_label(results)
    return TARGETS if old is None else ("direct", "hxgw", old, *TARGETS[2:])


def proxies_of(results: dict[str, Any]) -> tuple[str, ...]:
    return targets_of(results)[1:]


def head(results: dict[str, Any]) -> list[str]:
    return [*targets_of(results), *HEAD[4:], *([NEW_OLD] if old_label(results) else [])]


def num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def ratio_of(a: Any, b: Any) -> float | None:
    a, b = num(a), num(b)
    return a / b if a is not None and b else None


def diff_of(a: Any, b: Any) -> float | None:
    a, b = num(a), num(b)
    return a - b if a is not None and b is not None else None


def field(by_target: dict[str, Any], target: str, key: str) -> Any:
    return (by_target.get(target) or {}).get(key)


def pct(value: float | None) -> float | None:
    return None if value is None else 100 * value
