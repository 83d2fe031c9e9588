"""Where the daemon listens: --host and --port given on the command line win over config
and environment; and what a bind that fails says."""

from __future__ import annotations

import dataclasses
import errno

import structlog

from hxgw.config import Config, Listen

log = structlog.get_logger("hxgw.lifecycle.daemon")


@dataclasses.dataclass(frozen=True, slots=True)
class ListenOverride:
    """--host/--port given on the command line: they win over config and environment."""

    host: str | None = None
    port: int | None = None

    def apply(self, config: Config) -> Config:
        listen = Listen(
            host=self.host or config.listen.host,
            port=config.listen.port if self.port is None else self.port,
        )
        return dataclasses.replace(config, listen=listen)


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
