"""Rows billed by whichever answer first carries them (a batch's usage, a background
response's), which every later read carries too: each is queued once, and a reported one
replaces its estimate, as the store itself does (`ON CONFLICT ... WHERE` in
hxgw.usage.schema), under the estimate's key. What each queued row adds to what was billed of it before is what
the key's metrics add."""

from __future__ import annotations

from typing import NamedTuple

from hxgw.usage.row import COLUMNS, Values

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


class Added(NamedTuple):
    """What a row queued adds to its key's billing: all of it, or, for a reported row in
    place of its estimate, the difference."""

    key: str
    prompt: int
    completion: int
    cost: float


class OnceRows:
    """The rows queued lately, by their key in the store (request id and start)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[object, object], Values] = {}  # oldest first

    def take(self, row: Values) -> Added | None:
        """What `row` adds when it is to be queued; None when it adds nothing (the same row
        again, or an estimate after the report)."""
        same = (row[_ID], row[_STARTED])
        before = self._seen.get(same)
        if before is not None and not _replaces(before, row):
            return None
        self._seen[same] = row
        if len(self._seen) > REMEMBERED:
            del self._seen[next(iter(self._seen))]
        if before is None:
            return Added(row[_KEY], row[_PROMPT], row[_COMPLETION], row[_COST])
        # Still the estimate's key, as the store keeps it: the key whose stream made the
        # response, not one it handed the response's id to, which read it finished.
        return Added(
            before[_KEY],
            row[_PROMPT] - before[_PROMPT],
            row[_COMPLETION] - before[_COMPLETION],
            row[_COST] - before[_COST],
        )


def _replaces(before: Values, row: Values) -> bool:
    """Whether the store takes `row` in place of `before`: a report for an estimate alone."""
    return bool(before[_SOURCE] == "estimated" and row[_SOURCE] == "reported")
