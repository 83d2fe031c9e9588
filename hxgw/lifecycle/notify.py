"""sd_notify for a `Type=notify` unit, a no-op when systemd did not ask for it.

systemd reads READY=1 once the socket listens, RELOADING=1 with MONOTONIC_USEC
on reload (without the timestamp `systemctl reload` can hang on newer
systemd), STOPPING=1 on shutdown, WATCHDOG=1 as a heartbeat, and STATUS= for
`systemctl status`.
"""

from __future__ import annotations

import os
import time

import sdnotify
import structlog

log = structlog.get_logger("hxgw.lifecycle.notify")


class Notifier:
    """Speaks to the socket named by NOTIFY_SOCKET in the process environment
    (sdnotify reads it from there)."""

    def __init__(self) -> None:
        env = os.environ
        self._notifier: sdnotify.SystemdNotifier | None = None
        self._watchdog_usec = 0
        if env.get("NOTIFY_SOCKET"):
            try:
                # debug=True: sdnotify otherwise swallows every send error.
                self._notifier = sdnotify.SystemdNotifier(debug=True)
                # A full notify queue must never stall the event loop: drop and log instead.
                self._notifier.socket.setblocking(False)
            except OSError as exc:
                log.error("cannot reach the systemd notify socket", error=str(exc))
            if env.get("WATCHDOG_USEC", "").isdigit() and env.get(
                "WATCHDOG_PID", str(os.getpid())
            ) == str(os.getpid()):
                self._watchdog_usec = int(env["WATCHDOG_USEC"])

    def close(self) -> None:
        if self._notifier is not None and self._notifier.socket is not None:
            self._notifier.socket.close()
        self._notifier = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def enabled(self) -> bool:
        return self._notifier is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of what systemd allows, or None."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec and self.enabled else None

    def send(self, *fields: str) -> None:
        if self._notifier is None:
            return
        message = "\n".join(field.replace("\n", " ") for field in fields)
        try:
            self._notifier.notify(message.encode("ascii", "replace").decode("ascii"))
        except OSError as exc:
            log.warning("sd_notify failed", error=str(exc), message=message.split("\n")[0])

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self, status: str) -> None:
        self.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", f"STATUS={status}"
        )

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")
