"""Rows billed by whichever answer first carries them (a batch's usage, a background
response's), which every later read carries too.

Each is queued once by a worker (`OnceRows`), and written as the store keeps it: one row
per request id and start, a reported one replacing its estimate under the estimate's key
(`ON CONFLICT ... WHERE` in hxgw.usage.schema). What the key's metrics add is what the
store took (`write_once`): the workers of one instance, and instances sharing a database,
each read the same ended batch, and each worker's memory had billed it to the metrics
again."""

from __future__ import annotations

from typing import NamedTuple

from hxgw.store import Connection
from hxgw.usage.row import COLUMNS, Values
from hxgw.usage.schema import INSERT, TABLE

REMEMBERED = 4096
"""Rows remembered: a list's page of ended batches is at most 100."""
_ID, _STARTED, _SOURCE, _KEY, _PROMPT, _COMPLETION, _COST = (
    COLUMNS.index(c)
    for c in (
        "request_id",
        "started",
        "usage_source",
        "key_name",
        "prompt_tokens",
        "completion_tokens",
        "cost",
    )
)
_BEFORE = (
    f"SELECT key_name, prompt_tokens, completion_tokens, cost FROM {TABLE}"  # noqa: S608
    " WHERE request_id = ? AND started = ?"
)


class Added(NamedTuple):
    """What a row written adds to its key's billing: all of it, or, for a reported row in
    place of its estimate, the difference (which may be below zero)."""

    key: str
    prompt: int
    completion: int
    cost: float


class OnceRows:
    """The rows a worker queued lately, by their key in the store (request id and start),
    so that a list read every second does not queue its ended batches every second."""

    def __init__(self) -> None:
        self._seen: dict[tuple[object, object], Values] = {}  # oldest first

    def take(self, row: Values) -> bool:
        """Whether `row` is to be queued: not the same row again, nor an estimate after
        its report."""
        same = (row[_ID], row[_STARTED])
        before = self._seen.get(same)
        if before is not None and not _replaces(before, row):
            return False
        self._seen[same] = row
        if len(self._seen) > REMEMBERED:
            del self._seen[next(iter(self._seen))]
        return True


def write_once(connection: Connection, row: Values) -> Added | None:
    """Write `row` inside the caller's transaction; what it added to its key's billing,
    None when the store kept the row it had. Whether it took the row is the write's own
    count (RETURNING would need SQLite 3.35, newer than some systems' Python links).

    On PostgreSQL a report written in the instant another instance's estimate of it is,
    reading no row before it, is told all of itself, the estimate too: the metrics count
    both, the store holds the report (under the estimate's key, which is the one told).
    SQLite's transactions are IMMEDIATE: one at a time."""
    same = (row[_ID], row[_STARTED])
    before = connection.execute(_BEFORE, same)
    if not connection.changed(INSERT, row):
        return None
    if not before:
        # Read back: the row it took the place of may have come meanwhile (PostgreSQL).
        key = connection.execute(_BEFORE, same)[0][0]
        return Added(key, row[_PROMPT], row[_COMPLETION], row[_COST])
    key, prompt, completion, cost = before[0]  # the store keeps the estimate's key
    return Added(key, row[_PROMPT] - prompt, row[_COMPLETION] - completion, row[_COST] - cost)


def _replaces(before: Values, row: Values) -> bool:
    """Whether the store takes `row` in place of `before`: a report for an estimate alone."""
    return bool(before[_SOURCE] == "estimated" and row[_SOURCE] == "reported")
