"""Warnings about a config that loads but may not do what its operator expects:
changes a reload cannot apply, and secrets that every user can read."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import structlog

from hxgw.config.schema import Config

log = structlog.get_logger("hxgw.config.schema")


def log_restart_only_changes(old: Config, new: Config) -> None:
    if old.listen != new.listen:
        log.warning(
            "the listen address changed; it takes effect on restart",
            listening=f"{old.listen.host}:{old.listen.port}",
            configured=f"{new.listen.host}:{new.listen.port}",
        )
    if old.limits.upstream_connections != new.limits.upstream_connections:
        log.warning("limits.upstream_connections changed; it takes effect on restart")
    if (old.tls is None) != (new.tls is None):
        log.warning("TLS was switched on or off; it takes effect on restart")
    if old.limits.client_idle_timeout != new.limits.client_idle_timeout:
        log.warning("limits.client_idle_timeout changed; it takes effect on restart")
    if old.logging != new.logging:
        log.warning("logging settings changed; they take effect on restart")


def warn_if_world_readable(config: Config) -> None:
    paths = [*config.files, *([Path(p)] if (p := os.environ.get("HX_ENV_FILE")) else [])]
    if config.tls is not None:
        paths.append(config.tls.key)
    for path in paths:
        with contextlib.suppress(OSError):
            if path.stat().st_mode & stat.S_IROTH:
                log.warning("file is readable by every user; make it mode 640", path=str(path))
