"""How `hxgw usage` prints its lines: a table for a terminal (control characters a client
put in a name escaped, a sum under the lines), JSON, or CSV (a name a spreadsheet would run
as a formula written as text)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from hxgw.units import money_column
from hxgw.usage import Totals

FORMATS = ("table", "json", "csv")
_COLUMNS = tuple(f.name for f in fields(Totals) if f.name != "group")
"""A report line's figures, in the order Totals (and a CSV read by position) has them."""


@dataclass(frozen=True, slots=True)
class Asked:
    """What a report was asked for: one line per `by`, over the window from `since` to
    `until` (None: now), and at most `top` lines, those that cost most (None: all)."""

    by: str
    since: float
    until: float | None
    top: int | None = None


def window(since: float, until: float | None) -> str:
    """The report's window, as its notes say it: `since ...`, or `from ... to ...`."""
    return f"since {iso(since)}" if until is None else f"from {iso(since)} to {iso(until)}"


def _json(lines: list[Totals], asked: Asked) -> str:
    # Each row names what it totals by its kind, as the CSV's header does: "key", "model", ...
    rows = [{asked.by: row.pop("group"), **row} for row in map(asdict, lines)]
    span = {"since": iso(asked.since)}
    if asked.until is not None:
        span["until"] = iso(asked.until)
    top = {"top": asked.top} if asked.top is not None else {}
    body = {**span, "by": asked.by, **top, "rows": rows}
    return json.dumps(body, indent=2) + "\n"


def _csv(lines: list[Totals], asked: Asked) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((asked.by, *_COLUMNS))
    for line in lines:
        name = "" if line.group is None else _as_text(line.group)  # null: an empty cell
        writer.writerow([name, *(getattr(line, c) for c in _COLUMNS)])
    return out.getvalue()


def _as_text(name: str) -> str:
    """A name as a spreadsheet takes it, as text, never as a formula to run: one that
    begins as a formula does (`=`, `+`, `-`, `@`: a keys-file key named `-2+3`, say; or
    a tab or CR, which spreadsheets skip: a model's name as an upstream reported it) is
    quoted as text with `'`."""
    return "'" + name if name.startswith(("=", "+", "-", "@", "\t", "\r")) else name


def _table(lines: list[Totals], asked: Asked) -> str:
    header = (
        asked.by.upper(),
        "REQUESTS",
        "PROMPT",
        "COMPLETION",
        "TOTAL",
        "COST",
        "ERRORS",
        "FAILOVERS",
        "P50 LATENCY",
    )
    # With --top the sum is of the lines shown, and says so.
    label = "total" if asked.top is None else f"total (top {asked.top})"
    shown = [*lines, _sum(lines, label)] if len(lines) > 1 else lines
    costs = money_column([line.cost for line in shown])
    none = NONE_NAMED.get(asked.by, "")
    cells = [header] + [_cells(line, cost, none) for line, cost in zip(shown, costs, strict=True)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    rows = [_aligned(row, widths) for row in cells]
    if len(lines) > 1:
        # A rule sets the sum apart: a key, model or day may itself be named "total".
        rows.insert(-1, "-" * (len(rows[0]) - 1) + "\n")
    text = "".join(rows)
    if not lines:
        text += f"(no requests {window(asked.since, asked.until)})\n"
    return text


def _aligned(row: tuple[str, ...], widths: list[int]) -> str:
    first = row[0].ljust(widths[0])
    rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
    return "  ".join((first, *rest)).rstrip() + "\n"


def _cells(line: Totals, cost: str, none: str) -> tuple[str, ...]:
    """A line's cells; `none`: what the group's are called when it is null."""
    p50 = "-" if line.p50_latency is None else f"{line.p50_latency:.3f}s"
    return (
        none if line.group is None else printable(line.group),
        str(line.requests),
        str(line.prompt_tokens),
        str(line.completion_tokens),
        str(line.total_tokens),
        cost,
        str(line.errors),
        str(line.failovers),
        p50,
    )


NO_USER = "(no user)"
"""How a table names the requests that named no end user (JSON says null, a CSV nothing)."""
NONE_NAMED = {"user": NO_USER, "team": "(no team)"}
"""How a table names the null line of a grouping: the requests of keys in no team too."""


def printable(name: str) -> str:
    """A name as a terminal may be given it: an end user is the client's to name, and a
    control character in it (an escape sequence, a newline) is shown escaped, not run."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _sum(lines: list[Totals], label: str) -> Totals:
    """The table's last line. A median does not add up: it has none."""
    counts = [name for name in _COLUMNS if name != "p50_latency"]
    added = {name: sum(getattr(t, name) for t in lines) for name in counts}
    return Totals(group=label, p50_latency=None, **added)


def iso(when: float) -> str:
    """A moment as the JSON outputs of `hxgw usage` and `hxgw keys` write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


RENDERERS: dict[str, Callable[[list[Totals], Asked], str]] = {
    "table": _table,
    "json": _json,
    "csv": _csv,
}
