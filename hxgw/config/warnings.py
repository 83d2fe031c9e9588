"""Warnings about a config that loads but may not do what its operator expects:
changes a reload cannot apply, secrets that every user can read, a drain longer than
systemd waits."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import structlog

from hxgw.config.env_file import holds_secret
from hxgw.config.gateway import GATEWAY, STOP_AFTER_DRAIN, UNIT_STOP_TIMEOUT
from hxgw.config.routing_settings import REGISTRY, ROUTING
from hxgw.config.schema import GUESSABLE_UNDER, Config

log = structlog.get_logger("hxgw.config")

CONFIG_FILES = (GATEWAY, ROUTING, REGISTRY)


def log_restart_only_changes(started: Config, new: Config, listening: str) -> list[str]:
    """Each setting of `new` a reload cannot apply, against what the process started
    with (and the address against the one it listens on): the warning comes again on
    every reload until a restart, and none comes for a setting put back as it runs.
    Returns their places (`listen` first), which the reload's own line names."""
    moved = _log_listen_change(listening, new)
    places = [p for p, (read, _) in _RESTART_ONLY.items() if read(started) != read(new)]
    for place in places:
        fields = {"in_use": _logging(started), "configured": _logging(new)}
        log.warning(_RESTART_ONLY[place][1], **(fields if place == "logging" else {}))
    return ["listen", *places] if moved else places


_Read = Callable[[Config], object]

# The settings a reload cannot apply, by their place in gateway.yaml: what is compared,
# and what the operator is told.
_RESTART_ONLY: dict[str, tuple[_Read, str]] = {
    "tls": (lambda c: c.tls is None, "TLS was switched on or off; it takes effect on restart"),
    "limits.client_idle_timeout": (
        lambda c: c.limits.client_idle_timeout,
        "limits.client_idle_timeout changed: request bodies are held to it now, idle "
        "connections on restart",
    ),
    "limits_store": (lambda c: c.limits_store, "limits_store changed; it takes effect on restart"),
    "store": (lambda c: c.store, "store settings changed; they take effect on restart"),
    # A worker's is its supervisor's --workers 1: the supervisor says theirs.
    "workers": (lambda c: c.workers, "workers changed; it takes effect on restart"),
    # logging.access_log is read per request: only the level and format wait.
    "logging": (
        lambda c: (c.logging.level, c.logging.format),
        "logging.level or logging.format changed; it takes effect on restart",
    ),
}


def _logging(config: Config) -> str:
    return f"level:{config.logging.level},format:{config.logging.format}"


def log_supervisor_restart_changes(started: Config, fresh: Config, count: int | None) -> list[str]:
    """With workers: what a reload cannot change for them, which they cannot see (the
    supervisor gave them its address): the address, and their number when the config
    set it (`count`, None when the command line did). Returns their places."""
    places = ["listen"] if _log_listen_change(_configured(started), fresh) else []
    if count is not None and fresh.workers != started.workers:
        log.warning("workers changed; it takes effect on restart", running=count)
        places.append("workers")
    return places


def _configured(config: Config) -> str:
    return f"{config.listen.host}:{config.listen.port}"


def _log_listen_change(listening: str, new: Config) -> bool:
    """Whether `new` asks for an address other than the one in use, which is said."""
    configured = _configured(new)
    if configured != listening:
        log.warning(
            "the listen address differs from the one in use; it takes effect on restart",
            listening=listening,
            configured=configured,
        )
    return configured != listening


def warn_if_world_readable(config: Config, told: set[Path] | None = None) -> None:
    """Each file holding a secret that every user can read, with the command that fixes
    it: at start, and at each reload for a file not told of already (`told`, which this
    keeps): a keys file a reload adds is as exposed as one read at start, and one told of
    at every reload would be noise. A file fixed and loosened again is told of again."""
    readable = readable_secrets(config, os.environ.get("HX_ENV_FILE"))
    for path in readable:
        if told is None or path not in told:
            log.warning(
                "a file with secrets is readable by every user", path=str(path), fix=fix(path)
            )
    if told is not None:
        told.clear()
        told.update(readable)


def readable_secrets(config: Config, env_file: str | None) -> list[Path]:
    """The files holding a secret (the environment file when it sets a key, a keys file,
    the TLS key) that every user of the machine can read. The YAML files hold no secret, so
    their modes are the operator's."""
    paths = [f for f in config.files if f.name not in CONFIG_FILES]  # a keys file
    if env_file and holds_secret(Path(env_file)):
        paths.append(Path(env_file))
    if config.tls is not None:
        paths.append(config.tls.key)
    readable = []
    for path in paths:
        with contextlib.suppress(OSError):
            if path.stat().st_mode & stat.S_IROTH:
                readable.append(path)
    return readable


def fix(path: Path) -> str:
    return f"chmod o-rwx {path}"


def note_unpriced_models(config: Config) -> None:
    """Once, at start: the models without a price, which cost nothing in budgets."""
    if unpriced := unpriced_models(config):
        log.info("models without a price cost nothing in budgets", models=",".join(unpriced))


def unpriced_models(config: Config) -> list[str]:
    return [m.name for m in config.models.values() if m.price is None]


def guessable_keys(config: Config, before: Config | None = None) -> str | None:
    """What the client keys with short secrets risk, or None; after a reload, of those
    that were not so `before` it (the others were said at start)."""
    known = {key.name for key in before.keys if key.guessable} if before else set()
    short = [key.name for key in config.keys if key.guessable and key.name not in known]
    if not short:
        return None
    return (
        f"client keys shorter than {GUESSABLE_UNDER} characters can be guessed: "
        f"{', '.join(short)}; give each 32 random characters or more "
        "(`openssl rand -hex 32`), or make them with `hxgw keys create`"
    )


def slow_stop(config: Config) -> str | None:
    """What a drain too long for the shipped unit's stop timeout costs, or None."""
    longest = config.drain_timeout + STOP_AFTER_DRAIN
    if longest <= UNIT_STOP_TIMEOUT:
        return None
    return (
        f"shutdown.drain_timeout {config.drain_timeout:g}s and the usage rows' last write "
        f"take up to {longest:g}s to stop, past the shipped unit's TimeoutStopSec="
        f"{UNIT_STOP_TIMEOUT:g}: systemd would kill the streams without their error events "
        "and lose their usage rows; raise TimeoutStopSec in a drop-in, or shorten the drain"
    )


def warn_at_start(config: Config, told: set[Path] | None = None) -> None:
    """What the operator should hear once, when the daemon starts."""
    warn_if_world_readable(config, told)
    note_unpriced_models(config)
    for warning in (slow_stop(config), guessable_keys(config)):
        if warning:
            log.warning(warning)
