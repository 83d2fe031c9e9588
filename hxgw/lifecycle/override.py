"""What the process runs with whatever its config files say: --host, --port and --workers
given on the command line win over config and environment, and a worker runs with the
settings a reload cannot change as its supervisor started with them
(hxgw.lifecycle.pinned); and what a bind that fails says."""

from __future__ import annotations

import dataclasses
import errno
from typing import Literal

import structlog

from hxgw.config import Config, Listen
from hxgw.lifecycle.pinned import RestartOnly

log = structlog.get_logger("hxgw.lifecycle.daemon")


@dataclasses.dataclass(frozen=True, slots=True)
class Override:
    """What the command line gives, and what a worker's supervisor pinned."""

    host: str | None = None
    port: int | None = None
    workers: int | Literal["auto"] | None = None
    restart_only: RestartOnly | None = None
    """A worker's: its supervisor's (None in a process of its own)."""

    def apply(self, config: Config) -> Config:
        """`config` as the process runs it."""
        config = self.command_line(config)
        return config if self.restart_only is None else self.restart_only.apply(config)

    def command_line(self, config: Config) -> Config:
        """`config` with the command line's address and number of workers: what the files
        ask of this process, which a reload compares with what it runs."""
        listen = Listen(
            host=self.host or config.listen.host,
            port=config.listen.port if self.port is None else self.port,
        )
        workers = config.workers if self.workers is None else self.workers
        return dataclasses.replace(config, listen=listen, workers=workers)


@dataclasses.dataclass(slots=True)
class ListenInFiles:
    """The address the files (and HX_HOST, HX_PORT) last asked for. A reload compares
    what the process is asked to run, in which --host and --port have already won: an
    edited `listen` would pass as `changed=none` where the command line pins it."""

    override: Override
    files: Listen

    def reread(self, files: Config) -> None:
        """Say when `files` moved a part of the address the command line pins (a part
        it leaves to the files waits for a restart, which the reload says)."""
        moved, asked = [], files.listen
        if self.override.host and asked.host != self.files.host:
            moved.append("--host")
        if self.override.port is not None and asked.port != self.files.port:
            moved.append("--port")
        if moved:
            log.info(
                "listen changed in gateway.yaml; the command line's address wins",
                configured=f"{asked.host}:{asked.port}",
                pinned_by=",".join(moved),
            )
        self.files = asked


def log_cannot_listen(listen: Listen, exc: OSError) -> None:
    """The failed bind at start, with what to do about the commonest one."""
    fix = (
        {"fix": "another process has the port: stop it, or choose another (--port, HX_PORT)"}
        if exc.errno == errno.EADDRINUSE
        else {}
    )
    log.error(
        "cannot listen", host=listen.host, port=listen.port, error=exc.strerror or str(exc), **fix
    )
