"""One worker as the supervisor sees it: its process, its listening socket and what its
notify socket last said; how the supervisor binds the workers' sockets, waits for them
all and stops them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from hxgw.config import Config
from hxgw.lifecycle.aside import aside
from hxgw.lifecycle.stores import RELOAD_READ_TIMEOUT

log = structlog.get_logger("hxgw.lifecycle.supervisor")  # stop_all speaks for it


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
    owes_reload: bool = False
    """A reload came while it was starting: it is asked for one once it serves."""
    last_ping: float = 0.0
    quick_deaths: int = 0
    started_at: float = 0.0
    watcher: asyncio.Task[None] | None = None

    @classmethod
    def listening(cls, index: int, scratch: Path, listener: socket.socket) -> Worker:
        """Worker `index`, its notify socket in `scratch` heard on the running loop."""
        path = str(scratch / f"worker-{index}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        worker = cls(index=index, notify_path=path, notify=sock, listener=listener)
        asyncio.get_running_loop().add_reader(sock, worker.on_datagram)
        return worker

    @property
    def serving(self) -> bool:
        return self.process is not None and self.process.returncode is None and self.ready.is_set()

    @property
    def reload_refused(self) -> str | None:
        """Why the worker kept its config at its last reload (a config it rejected, or a
        snapshot it failed to build), or None when it took the new one."""
        _, found, last = self.status.partition("last reload: ")
        refused = found and last.startswith(("rejected: ", "failed: "))
        return last if refused else None

    def send(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(sig)

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


def judge_reload(asked: list[Worker], done: bool) -> tuple[str, bool]:
    """What a reload of the workers `asked` came to, logged, for STATUS=; and whether any
    of them took the new config."""
    took, refused = answers(asked)
    if took and refused:
        log.error(
            "config reload diverged: some workers took the new config, the others kept "
            "theirs; reload again once the config is right",
            took=len(took),
            refused=len(refused),
            why=refused[0],
        )
        return f"last reload: diverged, {len(took)} of {len(asked)} took it: {refused[0]}", True
    if refused:
        # Worker 0 logged the problems as an error; a line more for each would be noise.
        zero = any(w.index == 0 and w.reload_refused for w in asked if w.reloaded.is_set())
        say = log.info if zero else log.error
        say("config reload refused; the workers keep the config they had", why=refused[0])
        return f"last reload: {refused[0]}", False
    if done:
        log.info("workers reloaded", workers=len(took))
        # Worker 0's words (`ok: generation 3, changed routing.yaml`): what changed is the
        # same for all of them, and the operator wants to see it in `systemctl status`.
        return f"last reload: {took[0].status.partition('last reload: ')[2] or 'ok'}", True
    log.error("not every worker confirmed its reload", workers=len(asked))
    return "last reload: incomplete", bool(took)


async def started_again(worker: Worker, paths: Iterable[Path], reloaded: bytes) -> str:
    """What a worker started again serves, for STATUS=: the files as they are now, which
    may have changed since the reload (`reloaded`, their digest) the others serve. Read
    aside: a hung mount must not stop the supervisor's loop, nor its watchdog pings."""
    try:
        now = await asyncio.wait_for(aside(files_digest, paths), 5.0)
    except TimeoutError:
        now = reloaded  # not known: nothing to say
    if now == reloaded:
        return "a worker was started again"
    log.error(
        "a worker started again serves config files changed since the last reload, the "
        "others the reload's: reload to bring them together, or put the files back",
        worker=worker.index,
    )
    return "a worker was started again on config files changed since the last reload"


async def read_aside(
    reread: Callable[[], Config | None],
) -> tuple[Config, bytes] | None:
    """The config as `serve` reads it now, and its files' digest; None when it cannot be
    read, or not within the time a reload's read has (read aside, as `started_again`)."""

    def read() -> tuple[Config, bytes] | None:
        fresh = reread()
        return None if fresh is None else (fresh, files_digest(fresh.files))

    try:
        return await asyncio.wait_for(aside(read), RELOAD_READ_TIMEOUT)
    except TimeoutError:
        return None


def files_digest(paths: Iterable[Path]) -> bytes:
    """What the config files hold, as one digest (an unreadable one counts as such)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0unreadable")
    return digest.digest()


def answers(asked: list[Worker]) -> tuple[list[Worker], list[str]]:
    """Of the workers asked to reload, those that took the new config, and why the
    others refused it. One that died meanwhile says nothing: it starts again on the
    files as they are."""
    took: list[Worker] = []
    refused: list[str] = []
    for worker in asked:
        if not worker.serving or not worker.reloaded.is_set():
            continue
        why = worker.reload_refused
        if why is None:
            took.append(worker)
        else:
            refused.append(why)
    return took, refused


async def all_set(
    workers: list[Worker],
    wait_of: Callable[[Worker], Awaitable[object]],
    seconds: float,
    unless: asyncio.Event,
) -> bool:
    """Wait until each worker's wait is over (True), or `seconds` pass or `unless` is set
    (False): a stop must not wait behind a reload's wait for a stuck worker."""
    every: asyncio.Future[list[object]] = asyncio.gather(*(wait_of(w) for w in workers))
    interrupt: asyncio.Future[bool] = asyncio.ensure_future(unless.wait())
    waits: set[asyncio.Future[Any]] = {every, interrupt}
    done, _ = await asyncio.wait(waits, timeout=seconds, return_when=FIRST_COMPLETED)
    every.cancel()
    interrupt.cancel()
    await asyncio.gather(every, interrupt, return_exceptions=True)  # ended, not left to log
    return every in done and not every.cancelled()


def reloaded_or_gone(worker: Worker) -> Awaitable[None]:
    """Its reload confirmed, or the worker gone: it starts again, on the config now on
    disk, once the reload is through (its exit waits in the queue behind it)."""
    return _set_or_gone(worker, worker.reloaded)


def ready_or_gone(worker: Worker) -> Awaitable[None]:
    """It serves, or it is gone: a first start need not wait READY_TIMEOUT out for a
    worker that exited (a config broken between the supervisor's read and its own)."""
    return _set_or_gone(worker, worker.ready)


async def _set_or_gone(worker: Worker, event: asyncio.Event) -> None:
    waits: set[asyncio.Future[object]] = {asyncio.ensure_future(event.wait())}
    if worker.process is not None:
        waits.add(asyncio.ensure_future(worker.process.wait()))
    try:
        await asyncio.wait(waits, return_when=FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def stop_all(workers: list[Worker], sig: signal.Signals, grace: float) -> None:
    """Send `sig` to every running worker; kill those still running after `grace`."""
    running = [w.process for w in workers if w.process and w.process.returncode is None]
    for process in running:
        process.send_signal(sig)
    try:
        async with asyncio.timeout(grace):
            await asyncio.gather(*(p.wait() for p in running))
    except TimeoutError:
        log.error("workers did not stop in time; killing them", seconds=grace)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


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
