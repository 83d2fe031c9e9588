"""The running daemon: listen, tell systemd, reload on SIGHUP, drain on SIGTERM.

Signal handlers only record the signal and wake the main loop, which does the
work (hxgw.lifecycle.signals).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import structlog
from aiohttp import web

from hxgw import __version__
from hxgw.config import ClientKey, Config
from hxgw.config.changes import changes, repointed
from hxgw.config.warnings import (
    guessable_keys,
    log_restart_only_changes,
    warn_at_start,
    warn_if_world_readable,
)
from hxgw.errors import ConfigError
from hxgw.keys import probe_limiter
from hxgw.keys.book import keys_now
from hxgw.keys.guard import is_within
from hxgw.lifecycle import stores
from hxgw.lifecycle.aside import first
from hxgw.lifecycle.beside import start_beside
from hxgw.lifecycle.capacity import log_capacity, raise_descriptor_limit, size_gates
from hxgw.lifecycle.drain import drain
from hxgw.lifecycle.listening import gateway_server, listen
from hxgw.lifecycle.notify import Notifier
from hxgw.lifecycle.override import ListenInFiles, Override, log_cannot_listen
from hxgw.lifecycle.seeds import Seeds
from hxgw.lifecycle.signals import DaemonSignals
from hxgw.lifecycle.start_signals import GENERATION, STARTED_AGAIN, EarlyReload, daemon_started
from hxgw.lifecycle.status_words import daemon_status
from hxgw.observe import AccessLog
from hxgw.observe.log import said_by_each, said_once
from hxgw.observe.workers import WORKER, WorkerFigures
from hxgw.runtime import HOP_ENV, ReloadRecord, Runtime
from hxgw.server import Dispatcher, GatewayServer
from hxgw.server.listener import reread_certificate, tls_context
from hxgw.state import GatewayState, SnapshotHolder, build_state
from hxgw.upstream import UpstreamClient

log = structlog.get_logger("hxgw.lifecycle.daemon")


class Daemon:
    def __init__(
        self,
        config: Config,
        config_dir: str,
        env: Mapping[str, str],
        override: Override,
        listen_fd: int | None = None,
        access: AccessLog | None = None,
        early: EarlyReload | None = None,
        listen_in_files: ListenInFiles | None = None,
    ) -> None:
        self.config_dir, self.env, self.override = config_dir, env, override
        self.listen_in_files = listen_in_files
        self.early, self.started_with = early, config
        self.asked = config
        """The config as the files said at the last reload (before one, as it started), less
        what `override` pins: what the next reload's changes are counted from."""
        self.listen_fd = listen_fd
        self.descriptors = 0
        """The descriptors this process may open, read at start."""
        self.seeds: Seeds | None = None
        self.readable: set[Path] = set()
        """The files with secrets every user can read that the log has named."""
        self.holder = SnapshotHolder()
        self.notifier = Notifier()
        self.signals = DaemonSignals()
        self.ssl_context: ssl.SSLContext | None = None
        self.runtime = Runtime(
            access=access or AccessLog.plain(),
            figures=WorkerFigures.from_env(env),
            hop=env.get(HOP_ENV, ""),
            started=daemon_started(env),
        )
        self.inflight = self.runtime.inflight
        self.runtime.metrics.keys.keys_now = self._keys_now

    def _keys_now(self) -> Iterable[ClientKey]:
        return keys_now(self.holder.current.keys_by_digest.values(), self.runtime.stored_keys)

    async def run(self) -> int:
        client = UpstreamClient()
        again = self.env.get(STARTED_AGAIN) == "1"
        with contextlib.nullcontext() if again else said_once():
            serving = await self._start(client)
        if serving is None:
            return 1
        runner, server = serving
        self.notifier.ready(self._status())
        beside = start_beside(self.runtime, self.holder, self.notifier)
        await self._main_loop()
        await drain(
            runner,
            server,
            self.inflight,
            self.notifier,
            seconds=self.holder.current.config.drain_timeout,
            now=self.signals.stop_now,
        )
        for task in beside:
            task.cancel()
        await asyncio.gather(*beside, return_exceptions=True)
        client.close()
        await stores.close_stores(self.runtime)
        self.notifier.close()
        self.runtime.access.flush()  # lines of the last loop turn, before "stopped"
        log.info("stopped")
        return 0

    async def _start(self, client: UpstreamClient) -> tuple[web.ServerRunner, GatewayServer] | None:
        """Open the stores, build the first snapshot, listen; None when it cannot listen."""
        config = self.started_with
        warn_at_start(config, self.readable)
        self.descriptors = raise_descriptor_limit()
        self.seeds = stores.open_stores(self.runtime, config, self.env)
        await probe_limiter(self.runtime.limiter)  # at most limits_store.timeout
        if self.runtime.figures is not None:
            self.runtime.figures.retire_previous()  # of a worker this one replaces
        generation = int(self.env.get(GENERATION, "1"))
        self._adopt(build_state(config, client, generation, runtime=self.runtime))
        log_capacity(self.runtime.gates, self.descriptors)
        server = gateway_server(
            Dispatcher(self.holder, self.inflight), self.runtime, config, self._per_address
        )
        # shutdown_timeout: our own drain has already waited; see lifecycle.drain.
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self.ssl_context = tls_context(config.tls) if config.tls else None
        # A worker accepts on the socket its supervisor bound; otherwise bind here.
        listener = socket.socket(fileno=self.listen_fd) if self.listen_fd is not None else None
        try:
            await listen(runner, config, listener, self.ssl_context)
        except OSError as exc:
            with said_by_each():  # this worker's socket, not the files they share
                log_cannot_listen(config.listen, exc)
            await runner.cleanup()
            client.close()
            await stores.close_stores(self.runtime)
            return None
        self.runtime.listening = f"{config.listen.host}:{config.listen.port}"
        self.signals.install(self.early, worker=self.listen_fd is not None)
        log.info(
            "listening",
            host=config.listen.host,
            port=config.listen.port,
            version=__version__,
            models=len(config.models),
            groups=len(config.routing.groups),
            upstreams=",".join(u.url for u in config.upstreams.values()),
        )
        return runner, server

    async def _main_loop(self) -> None:
        asked = self.signals
        while not asked.stop.is_set():
            await first(asked.reload.wait(), asked.stop.wait())
            if asked.reload.is_set() and not asked.stop.is_set():
                asked.reload.clear()
                # A stop does not wait behind a reload stuck reading a file.
                await first(self.reload(), asked.stop.wait())

    async def reload(self) -> bool:
        """Load, validate and build the new snapshot aside, then swap it in; whatever
        goes wrong on the way, the old one keeps serving and systemd hears why."""
        current = self.holder.current
        self.notifier.reloading(f"reloading config (generation {current.generation})")
        try:
            with said_once():
                loaded = await stores.reload_serving(
                    self.config_dir, self.env, self.runtime, current.config
                )
                asked = self.override.command_line(loaded)  # as the files say, less the pins
                if self.listen_in_files is not None:
                    self.listen_in_files.reread(loaded)
                config = self.override.apply(loaded)
                snapshot = build_state(config, current.client, current.generation + 1, self.runtime)
                await stores.reloaded(self.runtime, self.seeds, config)
                waiting = log_restart_only_changes(self.started_with, asked, self.runtime.listening)
                warn_if_world_readable(config, self.readable)
                if short := guessable_keys(config, current.config):
                    log.warning(short)
            changed = changes(self.asked, asked)
            changed.waiting = waiting
            if self.ssl_context is not None and config.tls is not None:
                reread_certificate(self.ssl_context, config.tls)
            # The swap is its last step but the old pools' closing: a failure before it
            # leaves the old snapshot serving (with the routing memory, gates and gauges
            # _adopt had set for the new one so far).
            self._adopt(snapshot)
            self.asked = asked
        except ConfigError as exc:
            problems = str(exc).splitlines()
            # The first in full, the rest counted: STATUS= and the status page have a
            # line for it, and one fixed would only meet the next at the next reload.
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self._record_reload("rejected", problems[0] + more)
            # Workers read the same files: the first says why as an error, for all of
            # them; the others say theirs (which may differ) at info.
            say = log.error if self.env.get(WORKER, "0") == "0" else log.info
            say(
                "config reload rejected; still serving the previous config",
                generation=current.generation,
                problems=problems,
            )
            self.notifier.ready(self._status())
            return False
        except Exception as exc:
            self._record_reload("failed", f"{type(exc).__name__}: {exc}")
            log.exception(
                "config reload failed; still serving the previous config",
                generation=current.generation,
            )
            self.notifier.ready(self._status())
            return False
        generation = snapshot.generation
        self._record_reload("ok", f"generation {generation}, {changed.summary()}")
        with said_once():
            log.info(
                "config reloaded",
                generation=generation,
                models=len(config.models),
                groups=len(config.routing.groups),
                **changed.log_fields(),
            )
        self.notifier.ready(self._status())
        return True

    def _adopt(self, snapshot: GatewayState) -> None:
        """Make `snapshot` the one new requests start on. The routing memory (health,
        breakers) is the process's: kept for the models still there, going where they went."""
        config, started = snapshot.config, self.holder.started
        moved = repointed(self.holder.current.config if started else config, config)
        before = self.holder.current.origins.values() if started else ()
        self.runtime.memory.health.configure(config.routing.health, config.models, moved)
        size_gates(self.runtime.gates, config, self.descriptors)
        self.runtime.metrics.generation.set(snapshot.generation)
        self.runtime.metrics.models.configure(config.models)
        self.holder.swap(snapshot)
        # Then the pools of the upstreams it no longer names close: nothing new uses them.
        snapshot.client.retire(set(before) - set(snapshot.origins.values()))

    def _per_address(self) -> tuple[int, Callable[[str], bool]]:
        config = self.holder.current.config
        trusted = config.bad_keys.trusted_proxies
        return config.limits.connections_per_address, lambda address: is_within(address, trusted)

    def _record_reload(self, result: str, message: str) -> None:
        self.runtime.last_reload = ReloadRecord(result=result, message=message, at=time.time())
        self.runtime.metrics.reload_done(result)

    def _status(self) -> str:
        state, runtime = self.holder.current, self.runtime
        return daemon_status(runtime.listening, state.generation, state.config, runtime.last_reload)
