"""The signals a serving daemon takes, as events its main loop waits on.

SIGHUP asks for a reload; SIGTERM (and SIGINT) for a drain; a second stop signal cuts
the drain short, and a third exits at once. Handlers only set events and the main loop
does the work (as gunicorn's arbiter and uvicorn do): a burst of HUPs collapses into
one reload, and nothing runs inside a signal handler but setting an event.

A worker leaves the decisions to its supervisor (hxgw.lifecycle.supervisor): a signal to
the whole process group (Ctrl-C, `kill -- -PGID`) reaches it and the supervisor, which
passes it on. Its SIGTERM only starts the drain, and the supervisor's STOP_NOW says
when to cut it short; it ignores SIGHUP and reloads on the supervisor's RELOAD_NOW.
"""

from __future__ import annotations

import asyncio
import os
import signal

import structlog

from hxgw.lifecycle.start_signals import RELOAD_NOW, STOP_NOW, EarlyReload

log = structlog.get_logger("hxgw.lifecycle.signals")


class DaemonSignals:
    def __init__(self) -> None:
        self.reload, self.stop = asyncio.Event(), asyncio.Event()
        self.stop_now = asyncio.Event()
        """A second stop signal: cut the drain short."""

    def install(self, early: EarlyReload | None, *, worker: bool) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(RELOAD_NOW if worker else signal.SIGHUP, self.reload.set)
        if early is not None and early.requested:
            self.reload.set()  # asked for while starting
        if not worker:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_stop, sig)
            return
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(STOP_NOW, self._on_stop, STOP_NOW)

    def _on_stop(self, sig: signal.Signals) -> None:
        if self.stop_now.is_set():
            log.warning("third stop signal: exiting at once", signal=sig.name)
            os._exit(1)
        if self.stop.is_set():  # what is in flight is cut now, with its records
            log.warning("second stop signal: ending the drain now", signal=sig.name)
            self.stop_now.set()
        self.stop.set()
