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
class AddressAsked:
    """The address the files (and HX_HOST, HX_PORT) last asked for. A reload compares
    what the process is asked to run, in which --host and --port have already won: an
    edited `listen` would pass as `changed=none` where the command line pins another."""

    override: Override
    files: Listen

    def reloaded(self, files: Config) -> None:
        """Say when `files` moved the address and the command line keeps it."""
        pinned = self.override.command_line(files).listen
        if files.listen not in (self.files, pinned):
            log.info(
                "listen changed in gateway.yaml; --host/--port on the command line win",
                configured=f"{files.listen.host}:{files.listen.port}",
                command_line=f"{pinned.host}:{pinned.port}",
            )
        self.files = files.listen


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
