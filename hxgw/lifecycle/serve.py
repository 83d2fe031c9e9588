"""`hxgw serve`: load the config, set up logging, and run the daemon or, for
several workers, the supervisor, until it is stopped."""

from __future__ import annotations

import dataclasses
from collections.abc import Coroutine, Mapping
from typing import Any

import structlog

from hxgw.config import Config
from hxgw.errors import ConfigError
from hxgw.lifecycle.daemon import Daemon
from hxgw.lifecycle.override import ListenInFiles, Override
from hxgw.lifecycle.pinned import pinned
from hxgw.lifecycle.start_signals import SUPERVISOR_PID, EarlyReload, follow_supervisor
from hxgw.lifecycle.stores import load_serving
from hxgw.lifecycle.supervisor import Supervisor
from hxgw.lifecycle.worker import worker_count
from hxgw.observe import access as logsetup
from hxgw.runtime import HOP_ENV, new_hop

log = structlog.get_logger("hxgw.lifecycle.serve")


def serve(
    config_dir: str,
    env: Mapping[str, str],
    override: Override,
    workers: int | str | None = None,
    listen_fd: int | None = None,
    early: EarlyReload | None = None,
) -> int:
    """Load the config, then run the daemon (or, for several workers, the supervisor)
    until it is stopped. Returns the exit code. `early`: the SIGHUP catcher `hxgw`
    installed before its imports, else one is installed now."""
    early = early or EarlyReload(worker=listen_fd is not None)
    if listen_fd is None:  # a worker has its supervisor's
        env = {**env, HOP_ENV: new_hop()}
    supervisor = env.get(SUPERVISOR_PID)
    if listen_fd is not None and supervisor and not follow_supervisor(int(supervisor)):
        return 1  # its supervisor died while it started
    if listen_fd is not None:
        override = dataclasses.replace(override, restart_only=pinned(env))
    try:
        files = load_serving(config_dir, env)
    except ConfigError as exc:
        logsetup.configure()
        log.error(
            "invalid config; not starting", config_dir=config_dir, problems=str(exc).splitlines()
        )
        return 1
    config = override.apply(files)
    # A worker's address is its supervisor's, which says what the files asked.
    listen_in_files = None if listen_fd is not None else ListenInFiles(override, files.listen)
    access = logsetup.configure(config.logging.level, config.logging.format)
    count = worker_count(workers or config.workers)
    if listen_fd is None and count > 1:
        argv = [
            "--config-dir",
            config_dir,
            "--host",
            config.listen.host,
            "--port",
            str(config.listen.port),
            "--workers",
            "1",
        ]

        def reread() -> Config | None:
            try:
                fresh = load_serving(config_dir, env)
            except ConfigError:  # the workers say why; the supervisor keeps what it has
                return None
            except Exception:  # not the config's fault: a bug to see, never to swallow
                log.exception("the supervisor could not read the config again; it keeps its own")
                return None
            if listen_in_files is not None:
                listen_in_files.reread(fresh)
            return override.apply(fresh)

        return _run(Supervisor(config, argv, env, count, early, reread, workers is None).run())
    return _run(
        Daemon(config, config_dir, env, override, listen_fd, access, early, listen_in_files).run()
    )


def _run(main: Coroutine[Any, Any, int]) -> int:
    import uvloop

    return int(uvloop.run(main))
