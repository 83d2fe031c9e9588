"""`hxgw keys list`: every key the gateway takes, made by `hxgw keys` or named in its
config's keys file, with its limits, its state and what it has spent of its budget this
period; never a secret, nor a digest.

MASTER_KEY is left out: it has no name but `master`, no limits, and this shell need not
have the service's environment. Spend is read from the usage ledger, which is written in
batches: it is up to a second or so behind the gateway's own count.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from hxgw.config import MASTER_KEY_NAME, ClientKey, Config, KeyLimits
from hxgw.config.schema import PERIOD_NAMES, PERIODS
from hxgw.keys.stored_key import StoredKey
from hxgw.store import Connection
from hxgw.tools.usage_render import iso
from hxgw.units import money, shown_amount
from hxgw.usage import ledger_exists
from hxgw.usage.spend import spent_this_period

STORE, KEYS_FILE = "store", "keys file"

State = Literal["active", "rotating", "revoked", "expired", "hidden"]
"""A key's state, as `--json` gives it for a script to match; `hidden` is a stored key a
keys-file key of its name sets aside. The table says more (until when a rotation runs)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Listed:
    """One key as the list shows it. Times are Unix seconds; `budget_period` and
    `spent` (this period's) are None for a key without a budget."""

    name: str
    source: str
    state: State
    groups: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget: float | None
    budget_period: str | None
    spent: float | None
    expires: float | None
    created: float | None = None
    updated: float | None = None
    revoked: float | None = None
    previous_until: float | None = None
    per_user: KeyLimits | None = None
    """The limits each end user of the key gets."""
    per_user_default: bool = False
    """Whether those are the config's `auth.per_user`, the key giving none of its own."""
    team: str | None = None
    """The team the key is in."""

    def public(self) -> dict[str, Any]:
        """The `--json` object: times as ISO 8601 UTC, as `hxgw usage` writes them."""
        row: dict[str, Any] = {}
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if name in _TIMES:
                value = None if value is None else iso(value)
            elif name == "groups" and value is not None:
                value = list(value)
            elif name == "per_user" and value is not None:
                value = limits_doc(value)
            row[name] = value
        return row


_TIMES = ("expires", "created", "updated", "revoked", "previous_until")


def limits_doc(limits: KeyLimits) -> dict[str, Any]:
    """Limits as `--json` says a key's own: the budget's period only with a budget."""
    period = PERIOD_NAMES[limits.budget_period_s] if limits.budget is not None else None
    return {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_parallel": limits.max_parallel,
        "budget": limits.budget,
        "budget_period": period,
    }


def limits_said(limits: KeyLimits | None) -> str:
    """Limits as the table says them in one cell: `rpm 10, budget 1.00/1d`."""
    if limits is None:
        return "-"
    counts = (("rpm", limits.rpm), ("tpm", limits.tpm), ("parallel", limits.max_parallel))
    said = [f"{name} {value}" for name, value in counts if value is not None]
    if limits.budget is not None:
        said.append(f"budget {money(limits.budget)}/{PERIOD_NAMES[limits.budget_period_s]}")
    return ", ".join(said)


def listed(
    stored: list[StoredKey], config: Config | None, connection: Connection | None
) -> list[Listed]:
    """The store's keys, then the config's, each with its spend this period (none where
    there is no store yet: `connection` None)."""
    now = time.time()
    default = config.per_user if config else None
    configured = (
        [_configured(k, default) for k in config.keys if k.name != MASTER_KEY_NAME]
        if config
        else []
    )
    # A config key wins a name clash: the stored key of that name opens nothing. One
    # revoked stays revoked (as the gateway tells its holder): nothing brings it back.
    taken = {row.name for row in configured}
    rows = [
        replace(row, state="hidden") if row.name in taken and row.state != "revoked" else row
        for row in (_stored(k, now, default) for k in stored)
    ]
    return _with_spend(rows + configured, connection, now)


def public(key: StoredKey, default: KeyLimits | None = None) -> dict[str, Any]:
    """A stored key as `create`, `update` and `revoke` print it with `--json`: without
    the spend, which only `list` reads from the ledger. `default`: the config's
    `auth.per_user`, as `list` says it."""
    row = _stored(key, time.time(), default).public()
    del row["spent"]
    return row


def _stored(key: StoredKey, now: float, default: KeyLimits | None = None) -> Listed:
    """`default`: what each end user of a key that gives them nothing gets."""
    own = key.per_user()
    return Listed(
        name=key.name,
        source=STORE,
        state=_state(key, now),
        groups=key.groups,
        rpm=key.rpm,
        tpm=key.tpm,
        max_parallel=key.max_parallel,
        budget=key.budget,
        budget_period=key.budget_period if key.budget is not None else None,
        spent=None,
        expires=key.expires,
        created=key.created,
        updated=key.updated,
        revoked=key.revoked,
        previous_until=key.previous_until,
        per_user=own or default,
        per_user_default=own is None and default is not None,
        team=key.team,
    )


def _configured(key: ClientKey, default: KeyLimits | None) -> Listed:
    limits = key.limits
    budget = limits.budget if limits else None
    return Listed(
        name=key.name,
        source=KEYS_FILE,
        state="active",
        groups=tuple(sorted(key.groups)) if key.groups is not None else None,
        rpm=limits.rpm if limits else None,
        tpm=limits.tpm if limits else None,
        max_parallel=limits.max_parallel if limits else None,
        budget=budget,
        budget_period=PERIOD_NAMES[limits.budget_period_s]
        if limits and budget is not None
        else None,
        spent=None,
        expires=key.expires,
        per_user=key.per_user,
        # The very object: the config gives it to each file key that gives its end users
        # nothing (one that gives the same limits of its own keeps them past a change).
        per_user_default=default is not None and key.per_user is default,
        team=key.team.name if key.team is not None else None,
    )


def _with_spend(rows: list[Listed], connection: Connection | None, now: float) -> list[Listed]:
    """Each budgeted key's spend this period, as the gateway starts its budgets from."""
    budgeted: dict[int, list[str]] = {}
    for row in rows:
        if row.budget_period is not None:
            budgeted.setdefault(PERIODS[row.budget_period], []).append(row.name)
    if not budgeted:
        return rows
    spent = (
        spent_this_period(connection, budgeted, now)
        if connection is not None and ledger_exists(connection)
        else {}
    )
    return [
        row
        if row.budget_period is None
        else replace(row, spent=spent.get((row.name, PERIODS[row.budget_period]), (0, 0.0))[1])
        for row in rows
    ]


def table(rows: list[Listed]) -> str:
    if not rows:
        return "no keys yet: hxgw keys create NAME"
    head = (
        "NAME",
        "SOURCE",
        "STATE",
        "GROUPS",
        "RPM",
        "TPM",
        "PARALLEL",
        "BUDGET",
        "SPENT",
        "LEFT",
        "EXPIRES",
        "TEAM",
        "EACH END USER",
    )
    lines: list[tuple[str, ...]] = [head]
    for k in rows:
        budget, spent, left = "-", "-", "-"
        if k.budget is not None:
            used = k.spent or 0.0
            budget = f"{money(k.budget)}/{k.budget_period}"
            # What is left is the budget less the spend as shown: rounded each on its own,
            # 0.095 of 1.00 read 0.10 spent and 0.91 left.
            spent = money(used)
            left = money(max(k.budget - shown_amount(spent), 0.0))
        lines.append(
            (
                k.name,
                k.source,
                _shown(k),
                ",".join(k.groups) if k.groups else "all",
                *(str(v) if v is not None else "-" for v in (k.rpm, k.tpm, k.max_parallel)),
                budget,
                spent,
                left,
                _when(k.expires),
                k.team or "-",
                limits_said(k.per_user) + (" (default)" if k.per_user_default else ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def as_json(rows: list[Listed]) -> str:
    return json.dumps([row.public() for row in rows], indent=2)


def _state(key: StoredKey, now: float) -> State:
    if key.revoked is not None:
        return "revoked"
    if key.expires is not None and key.expires <= now:
        return "expired"
    if key.previous_until is not None and key.previous_until > now:
        return "rotating"
    return "active"


def _shown(row: Listed) -> str:
    """The state as the table says it."""
    if row.state == "rotating":
        return f"rotating (old until {_when(row.previous_until)})"
    if row.state == "hidden":
        return "hidden by the keys file"
    return row.state


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")
