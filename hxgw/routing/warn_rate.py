"""How often one model's failures are logged: a model that fails every request would
otherwise log two lines a request, past what journald keeps of a service (10,000 in
30 s), and drown the other lines with them."""

from __future__ import annotations

from dataclasses import dataclass

WARNINGS_A_SECOND = 10
"""The most failures of one model logged in a second."""


@dataclass(slots=True)
class WarnRate:
    second: int = -1
    warned: int = 0
    """Failures logged in `second`."""
    unsaid: int = 0
    """Failures not logged since the last that was."""

    def take(self, now: float) -> int | None:
        """Whether a failure is logged now: WARNINGS_A_SECOND a second at most, the first
        of a second saying how many were not before it (None: this one is counted, not
        logged)."""
        second = int(now)
        if second != self.second:
            self.second, self.warned = second, 0
        if self.warned >= WARNINGS_A_SECOND:
            self.unsaid += 1
            return None
        self.warned += 1
        unsaid, self.unsaid = self.unsaid, 0
        return unsaid
