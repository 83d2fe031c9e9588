"""`workers: N`: one process binds the sockets, N `hxgw serve` workers accept on them.

Python runs one core per process, so a gateway that should use every core
runs several. The supervisor binds one listening socket per worker, all on
the same address with SO_REUSEPORT, and passes each worker its own (an
inherited descriptor, and only its own). The kernel then spreads new connections
evenly over the sockets; one shared socket would let whichever worker woke first
accept a whole burst. A restarted worker gets the same socket back, so connections
that arrived meanwhile wait in its queue; one that cannot start (it dies again at
once) loses its socket, so that the others take its connections, until it serves.
Each worker is a complete daemon with its own config, routing health and drain.
The supervisor is what systemd sees: it gives each worker a private notify socket
and speaks for all of them, READY=1 once every worker is ready, RELOADING=1 ...
READY=1 once every worker has reloaded (STATUS= says whether they took or refused
the config), STOPPING=1 while they drain (its sockets closed at once), WATCHDOG=1
only while every worker's loop still pings. A worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from hxgw.config import Config
from hxgw.config.gateway import STOP_AFTER_DRAIN
from hxgw.config.warnings import log_supervisor_restart_changes
from hxgw.lifecycle.notify import Notifier
from hxgw.lifecycle.override import log_cannot_listen
from hxgw.lifecycle.pinned import pin
from hxgw.lifecycle.spawn import spawn
from hxgw.lifecycle.start_signals import RELOAD_NOW, STOP_NOW, EarlyReload
from hxgw.lifecycle.status_words import SupervisorStatus, also_waiting
from hxgw.lifecycle.worker import (
    Worker,
    all_set,
    bind,
    files_digest,
    judge_reload,
    read_aside,
    ready_or_gone,
    reloaded_or_gone,
    started_again,
    stop_all,
)

log = structlog.get_logger("hxgw.lifecycle.supervisor")

READY_TIMEOUT = 30.0
RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Supervisor:
    def __init__(
        self,
        config: Config,
        argv: list[str],
        env: Mapping[str, str],
        count: int,
        early: EarlyReload | None = None,
        reread: Callable[[], Config | None] = lambda: None,
        count_from_config: bool = False,
    ):
        self.config, self.argv, self.env, self.count = config, argv, env, count
        self.reread, self.count_from_config = reread, count_from_config
        """The config as `serve` reads it (None when it is wrong); whether `count` is its."""
        self.early = early
        self.notifier = Notifier()
        self.workers: list[Worker] = []
        self.stopping = False
        self.stop_asked = asyncio.Event()
        self.drain_timeout = config.drain_timeout
        """The workers' drain timeout as last reloaded (the rest of `config` is what the
        supervisor started with: its listener and worker count change on restart only)."""
        self.generation = 1
        """The workers' config generation: a worker started again starts at it."""
        self.paths, self.files = config.files, files_digest(config.files)
        """The config's files, and what they held, at the last reload the workers took
        (or at start)."""
        self.events: asyncio.Queue[str] = asyncio.Queue()
        self.scratch, self.port, self.started = Path(), 0, False
        self.report = SupervisorStatus(count, "", config)
        self.start_time = time.time()  # the daemon's, which its uptime counts from
        self.restarts: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        try:
            listeners = bind(self.config.listen.host, self.config.listen.port, self.count)
        except OSError as exc:
            log_cannot_listen(self.config.listen, exc)
            return 1
        self.port = listeners[0].getsockname()[1]
        self.report.address = f"{self.config.listen.host}:{self.port}"
        with tempfile.TemporaryDirectory(prefix="hxgw-workers-") as scratch:
            self.scratch = Path(scratch)
            pin(self.config, self.scratch)  # before any worker starts
            self.workers = [
                Worker.listening(i, self.scratch, listeners[i]) for i in range(self.count)
            ]
            try:
                await self._serve()
            finally:
                self._close_listeners()
        self.notifier.close()
        log.info("stopped")
        return 0 if self.started or self.stop_asked.is_set() else 1

    async def _serve(self) -> None:
        # From the first worker on: one that is ready serves while the others start, and
        # a stop then must drain it, not end the supervisor (and, with it, the worker).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop, sig)
        for worker in self.workers:
            await self._spawn(worker)
        ready = await all_set(self.workers, ready_or_gone, READY_TIMEOUT, self.stop_asked)
        ready = ready and all(w.ready.is_set() for w in self.workers)
        if not ready and not self.stop_asked.is_set():
            exited = [
                w.process.returncode for w in self.workers if w.process and not w.ready.is_set()
            ]
            log.error(
                "workers did not become ready; stopping", timeout=READY_TIMEOUT, exited=exited
            )
            await stop_all([w for w in self.workers if not w.ready.is_set()], signal.SIGKILL, 10)
        if not ready:
            await self._stop()  # those that serve drain what they took
            return
        self.started = True
        self._install_signals()
        log.info(
            "listening",
            host=self.config.listen.host,
            port=self.port,
            workers=self.count,
            pids=[w.process.pid for w in self.workers if w.process],
        )
        self.notifier.ready(self._status("ready"))
        watchdog = (
            asyncio.create_task(self._watchdog()) if self.notifier.watchdog_interval else None
        )
        await self._loop()
        if watchdog:
            watchdog.cancel()

    async def _loop(self) -> None:
        while True:
            event = await self.events.get()
            if event == "reload":
                await self._reload()
            elif event == "stop":
                await self._stop()
                return
            elif event.startswith("exited:") and not self.stopping:
                # A task: its backoff must not hold up a reload or a stop.
                task = asyncio.create_task(self._restart(self.workers[int(event[7:])]))
                self.restarts.add(task)
                task.add_done_callback(self.restarts.discard)

    async def _stop(self) -> None:
        self.notifier.stopping(f"{self.count} workers draining")
        log.info("stopping", workers=self.count)
        self.stopping = True
        for task in self.restarts:
            task.cancel()
        # The workers stop listening as they drain; the supervisor's copies of their
        # sockets would keep taking connections nobody accepts.
        self._close_listeners()
        await stop_all(self.workers, signal.SIGTERM, self.drain_timeout + STOP_AFTER_DRAIN)

    async def _reload(self) -> None:
        # A burst of HUPs is one reload; anything else queued meanwhile stays queued.
        others = [
            e
            for e in (self.events.get_nowait() for _ in range(self.events.qsize()))
            if e != "reload"
        ]
        for event in others:
            self.events.put_nowait(event)
        self.notifier.reloading("reloading every worker")
        # Only those serving: one still starting reads the files as they are now, and
        # RELOAD_NOW would end it before it catches the signal.
        asked = [w for w in self.workers if w.serving]
        for worker in self.workers:
            worker.owes_reload = worker not in asked  # asked once it serves
        for worker in asked:
            worker.reloaded.clear()
            worker.send(RELOAD_NOW)
        done = await all_set(asked, reloaded_or_gone, READY_TIMEOUT, self.stop_asked)
        if self.stop_asked.is_set():
            return  # the stop queued behind this reload says the rest
        state, took = judge_reload(asked, done)
        if took:
            self.generation += 1
            read = await read_aside(self.reread)
            if read is not None:
                fresh, self.files = read
                self.drain_timeout, self.paths = fresh.drain_timeout, fresh.files
                self.report.config = fresh
                count = self.count if self.count_from_config else None
                waiting = log_supervisor_restart_changes(self.config, fresh, count)
                state = also_waiting(state, waiting)
        self.notifier.ready(self._status(state))

    async def _restart(self, worker: Worker) -> None:
        code = worker.process.returncode if worker.process else None
        quick = time.monotonic() - worker.started_at < 10
        worker.quick_deaths = worker.quick_deaths + 1 if quick else 0
        delay = RESTART_BACKOFF[min(worker.quick_deaths, len(RESTART_BACKOFF) - 1)]
        died: dict[str, object] = {"code": code}
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):  # a signal the enum does not name
                died = {"signal": signal.Signals(-code).name}
        log.error("worker exited; starting it again", worker=worker.index, delay_s=delay, **died)
        # Died before it was ready, or soon again: it cannot come up (a config on disk it
        # refuses, say). Its socket is closed, so that the kernel gives its share of new
        # connections to the others; one kill of a worker that served is not that.
        cannot_start = not worker.ready.is_set() or worker.quick_deaths >= 2
        if cannot_start and worker.listener.fileno() != -1:
            worker.listener.close()
            others = any(w.serving for w in self.workers if w is not worker)
            said = "the others take its connections" if others else "no worker serves meanwhile"
            log.error("worker cannot start; " + said, worker=worker.index, retry_in_s=delay)
        self.notifier.status(self._status("a worker is down"))
        await asyncio.sleep(delay)
        if self.stopping:
            return
        await self._spawn(worker)
        process = worker.process
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(READY_TIMEOUT):
                await worker.ready.wait()
        if not worker.ready.is_set() or worker.process is not process:
            return  # not ready, or died again: a later restart's to say
        log.info("worker started again", worker=worker.index)
        said = await started_again(worker, self.paths, self.files)
        self.notifier.status(self._status(said))
        if worker.owes_reload:  # it may have read the files before a reload
            worker.owes_reload = False
            worker.send(RELOAD_NOW)

    async def _spawn(self, worker: Worker) -> None:
        worker.process = await spawn(
            worker,
            self.argv,
            self.env,
            generation=self.generation,
            scratch=self.scratch,
            address=(self.config.listen.host, self.port),
            started=self.start_time,
        )
        worker.watcher = asyncio.create_task(self._watch_exit(worker, worker.process))

    async def _watch_exit(self, worker: Worker, process: asyncio.subprocess.Process) -> None:
        await process.wait()
        if worker.process is process:
            self.events.put_nowait(f"exited:{worker.index}")

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval or 1.0
        while True:
            now = time.monotonic()
            # A serving worker's ping older than two intervals (one missed) means its loop
            # is stuck: stop vouching for the service and let systemd restart all of it.
            # One waiting to be started again sends none.
            if all(now - w.last_ping < 2 * interval for w in self.workers if w.serving):
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.events.put_nowait, "reload")
        if self.early is not None and self.early.requested:
            self.events.put_nowait("reload")  # asked for while the workers started

    def _on_stop(self, sig: signal.Signals) -> None:
        if self.stopping:
            log.warning("second stop signal: the workers end their drains now", signal=sig.name)
            for worker in self.workers:
                worker.send(STOP_NOW)
            return
        self.stop_asked.set()
        self.events.put_nowait("stop")

    def _status(self, state: str) -> str:
        serving = sum(w.serving for w in self.workers)
        return self.report.text(state, serving_now=serving, generation=self.generation)

    def _close_listeners(self) -> None:
        for worker in self.workers:
            worker.listener.close()
