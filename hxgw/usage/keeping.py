"""The rows the store did not take, kept in the spool until it does (hxgw.usage.ledger).

What the spool refuses too (it is full, or its disk cannot be written) is lost: the log
says so when it begins, why, and how many once the spool takes rows again, rather than
once a batch. The counts are the ledger's figures in /metrics.
"""

from __future__ import annotations

import structlog

from hxgw.usage.row import Values
from hxgw.usage.spool import Spool

log = structlog.get_logger("hxgw.usage")


class Keeper:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        # Only the ledger's writer thread changes them.
        self.spooled = 0
        self.dropped = 0
        self._refusing: str | None = None
        """Why the spool refuses rows, while it does."""
        self._refused = 0

    def spool_some(self, rows: list[Values]) -> list[Values]:
        """Spool what fits; return what the spool refused, which `keep` counts should the
        store refuse it too."""
        try:
            kept = self.spool.add(rows)
        except OSError:
            kept = 0
        self.spooled += kept
        return rows[kept:]

    def keep(self, rows: list[Values]) -> None:
        """Spool rows the store did not take, and count those the spool refuses."""
        if not rows:
            return
        why = None
        try:
            kept = self.spool.add(rows)
        except OSError as exc:  # a full or read-only disk, say
            kept, why = 0, f"the spool cannot be written: {exc.strerror or exc}"
        if why is None and kept < len(rows):
            why = f"the spool is full ({self.spool.max_bytes} bytes, store.spool_max_bytes)"
        self.spooled += kept
        self.dropped += len(rows) - kept
        self._refusal(why, len(rows) - kept)

    def store_takes_rows(self) -> None:
        """The store took rows again: what the spool refused meanwhile is said."""
        self._refusal(None, 0)

    def _refusal(self, why: str | None, refused: int) -> None:
        if why is not None and why != self._refusing:
            log.error(
                "usage rows are being lost: the store is unreachable and the spool refuses them",
                why=why,
            )
        elif why is None and self._refusing is not None:
            log.info("the usage spool takes rows again", rows_lost=self._refused)
            self._refused = 0
        self._refusing = why
        self._refused += refused

    def rescue(self, rows: list[Values]) -> None:
        """Spool the rows of a writer stuck on a store that takes its packets and never
        answers, from the thread that closes the ledger: through a file of its own, as
        another worker's would. Should the stuck write commit after all, the replay adds
        each row once."""
        if not rows:
            return
        spool = Spool(self.spool.directory, self.spool.max_bytes)
        try:
            kept = spool.add(rows)
        except OSError as exc:
            kept = 0
            log.error("usage rows lost: the spool cannot be written", error=str(exc))
        finally:
            spool.close()
        log.warning(
            "usage store did not answer in time; rows spooled for the next start",
            rows=kept,
            lost=len(rows) - kept,
        )
