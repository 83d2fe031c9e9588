"""A reload asked for before the daemon can carry it out.

SIGHUP's default action ends the process. Until the daemon (or the supervisor) has
its own handler, that is while the config loads and, with `--workers N`, until every
worker serves, a `kill -HUP` or `systemctl reload` would kill it. From its first
moments `hxgw serve` catches SIGHUP here instead; the daemon carries the reload out
as soon as it serves, with the config as it is then.
"""

from __future__ import annotations

import signal
from types import FrameType


class EarlyReload:
    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGHUP, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
