"""One worker as the supervisor sees it: its process, its listening socket and what its
notify socket last said; and how the supervisor binds the workers' sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field


@dataclass(eq=False)
class Worker:
    index: int
    notify_path: str
    notify: socket.socket
    listener: socket.socket
    """This worker's own listening socket, kept open across a quick restart."""
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = ""
    """The worker's last STATUS=, which says how its last reload went."""
    last_ping: float = 0.0
    quick_deaths: int = 0
    started_at: float = 0.0
    watcher: asyncio.Task[None] | None = None

    @property
    def serving(self) -> bool:
        return self.process is not None and self.process.returncode is None and self.ready.is_set()

    @property
    def reload_rejected(self) -> str | None:
        """Why the worker refused its last reload, or None when it did not."""
        _, found, why = self.status.partition("last reload: rejected: ")
        return why if found else None

    def on_datagram(self) -> None:
        while True:
            try:
                data = self.notify.recv(4096)
            except BlockingIOError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            if "STATUS" in fields:
                self.status = fields["STATUS"]
            if fields.get("RELOADING") == "1":
                self.reloaded.clear()
            if fields.get("READY") == "1":
                self.ready.set()
                self.reloaded.set()
            if fields.get("WATCHDOG") == "1":
                self.last_ping = time.monotonic()


def bind(host: str, port: int, count: int, *, listen: bool = True) -> list[socket.socket]:
    """`count` listening sockets on one address (port 0: the port the first one got).

    With `listen=False` they are bound only: the worker's server listens on its socket
    when it starts serving, and until then the kernel gives it no connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            if listen:
                sock.listen(2048)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def worker_count(setting: int | str) -> int:
    """`auto` is one worker per core this process may run on."""
    if setting == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return int(setting)
