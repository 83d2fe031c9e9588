"""`hxgw check-config`: load the config as `serve` would, list every problem, and say
what `serve` would warn about (secrets every user can read, models without a price, a
keys-file key that takes a stored key's name).

Run by hand, the shell has not the service's environment: `--env-file` reads the
service's file (systemd's EnvironmentFile syntax) over it, so that a `key_env` the
service sets is not reported missing. Under systemd (ExecStartPre) the warnings are
left to `serve`, which logs them a moment later: the journal gets them once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from hxgw.config import Config, load_config, load_store_settings
from hxgw.config.env_file import read_env_file
from hxgw.config.warnings import (
    fix,
    guessable_keys,
    readable_secrets,
    slow_stop,
    unpriced_models,
)
from hxgw.errors import ConfigError
from hxgw.keys.store import groups_lacking, live_names
from hxgw.keys.team_store import team_groups
from hxgw.store import open_database
from hxgw.units import counted

SERVICE_ENV_FILE = "/etc/hx-gateway-ml.env"


def add_arguments(parser: argparse.ArgumentParser, doing: str = "check") -> None:
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        help=f"{doing} with the variables of this file too, as the service has them "
        f"(its EnvironmentFile: {SERVICE_ENV_FILE})",
    )


def with_env_file(
    command: str, env: Mapping[str, str], env_file: str | None
) -> Mapping[str, str] | None:
    """`env` with the variables of `--env-file` over it; None, said on stderr, when the
    file cannot be read. A shell has not the service's variables, and a `key_env` the
    config names must be set for it to load, though no command but `serve` uses it."""
    if env_file is None:
        return env
    try:
        return {**env, **read_env_file(Path(env_file))}
    except (OSError, ValueError) as exc:
        why = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else exc
        print(f"hxgw {command}: --env-file {env_file}: {why}", file=sys.stderr)
        return None


def run(config_dir: str, env: Mapping[str, str], env_file: str | None, *, journal: bool) -> int:
    """`journal`: standard error is the journal (systemd's ExecStartPre)."""
    given = with_env_file("check-config", env, env_file)
    if given is None:
        return 1
    env = given
    try:
        config = load_config(config_dir, env, serving=False)
    except ConfigError as exc:
        # Under systemd (ExecStartPre) the reason must reach `journalctl -p err`.
        err = "<3>" if journal else ""
        print(f"{err}{config_dir}: invalid config", file=sys.stderr)
        problems = str(exc).splitlines()
        for problem in problems:
            print(f"{err}  {problem}", file=sys.stderr)
        if env_file is None and not journal and any("is not set" in p for p in problems):
            print(
                "note: this shell may lack the service's variables: check with them by "
                f"hxgw check-config --env-file {SERVICE_ENV_FILE}",
                file=sys.stderr,
            )
        return 1
    unread: list[str] = []
    stored = live_names(config_dir, env, unread)
    needs = (
        "serving needs a client key: set MASTER_KEY or auth.keys_file, or make one: "
        "hxgw keys create NAME"
    )
    keyless = not config.keys and not stored
    if keyless and not unread and (env_file is not None or journal):
        # The service's own variables: serve would fail, so this is no "ok".
        err = "<3>" if journal else ""
        print(f"{err}{config_dir}: invalid config\n{err}  {needs}", file=sys.stderr)
        return 1
    print(
        f"{config_dir}: ok ({counted(len(config.models), 'model')}, "
        f"{counted(len(config.routing.groups), 'group')}, "
        f"default group {config.routing.default_group}, strategy {config.routing.strategy})"
    )
    if keyless:
        if unread:  # the service may read what this user cannot
            print(
                f"warning: {needs} (unless the key store, which cannot be read from here, "
                f"holds one: {unread[0]})"
            )
        else:
            print(
                f"warning: {needs} (none in the key store, {_store_where(config_dir, env)}; "
                "this shell may lack the service's variables: check with them by "
                f"--env-file {SERVICE_ENV_FILE})"
            )
    if warning := _chatless_default(config):
        # serve does not say it: a request without a model would fail only when sent.
        print(f"warning: {warning}")
    if unread and not keyless:
        # Serving, the gateway would not be ready until it reads it (the other users' keys).
        print(f"warning: the key store cannot be read from here: {unread[0]}")
    if not journal:
        for path in readable_secrets(config, env_file or env.get("HX_ENV_FILE")):
            print(f"warning: {path} holds secrets and every user can read it: {fix(path)}")
        for warning in (slow_stop(config), guessable_keys(config)):
            if warning:
                print(f"warning: {warning}")
        if unpriced := unpriced_models(config):
            print(f"note: models without a price cost nothing in budgets: {', '.join(unpriced)}")
        for name in sorted(stored.keys() & {k.name for k in config.keys}):
            print(
                f"warning: the keys file's {name!r} takes the name of a key hxgw keys made,"
                " which is then refused (401): rename one"
            )
        for name, gone in groups_lacking(stored, config.routing.groups).items():
            print(
                f"warning: the stored key {name!r} is limited to groups the config lacks"
                f" ({', '.join(gone)}): hxgw keys update {name} --groups ..."
            )
        for name, gone in groups_lacking(
            team_groups(config_dir, env), config.routing.groups
        ).items():
            print(
                f"warning: the stored team {name!r} keeps its keys to groups the config lacks"
                f" ({', '.join(gone)}): hxgw teams update {name} --groups ..."
            )
    return 0


def _chatless_default(config: Config) -> str | None:
    """What is wrong when the default group, where a chat naming no model or group goes,
    has no model that takes a chat; None when one does."""
    group = config.routing.groups[config.routing.default_group]
    if any(config.models[name].serves("chat") for name in group.models):
        return None
    modes = ", ".join(f"{name} ({config.models[name].mode})" for name in group.models)
    return (
        f"the default group {group.name!r} has no chat model, only {modes}: a chat request"
        " that names no model or group fails (routing.yaml: routing.default_group)"
    )


def _store_where(config_dir: str, env: Mapping[str, str]) -> str:
    """Which key store the gateway of `config_dir` would open with these variables: the
    one `hxgw keys` writes to as well (HX_STATE_DIR or DATABASE_URL unset picks another)."""
    settings = load_store_settings(config_dir, env)
    return open_database(settings.database_url, settings.state_dir, create=False).where
