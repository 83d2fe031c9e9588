"""`hxgw keys`: the gateway's config a key is checked against. A key limited to groups
the config lacks could never serve; a stored key whose name a keys-file key has opens
nothing. Where the config does not load, the operator is told its real problem, most
often a `key_env` variable the service has and this shell lacks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from hxgw.config import Config, load_config
from hxgw.errors import ConfigError, did_you_mean
from hxgw.tools.check_config import SERVICE_ENV_FILE
from hxgw.tools.keys_args import BadUsage
from hxgw.units import counted


class Unchecked(Exception):
    """A key's groups given with a config that does not load: they cannot be checked."""


def read_config(config_dir: str, env: Mapping[str, str]) -> Config | ConfigError:
    """The gateway's config, or why it does not load. (`master`, MASTER_KEY's name, is
    taken whether or not it is set here.)"""
    try:
        return load_config(config_dir, env, serving=False)
    except ConfigError as exc:
        return exc


def unread(error: ConfigError, config_dir: str, so: str, aside: str = "") -> str:
    """Why there is no config to check against (none there, or its first problem), then
    `so`, what is left undone for want of it, with `aside` and what to give in brackets."""
    asides = [aside] if aside else []
    if not Path(config_dir).is_dir():
        said = f"no readable config in {config_dir}: {so}"
        asides.append("give --config-dir")
    else:
        problems = str(error).splitlines()
        more = f" (and {counted(len(problems) - 1, 'more problem')})" if len(problems) > 1 else ""
        said = f"the config in {config_dir} does not load: {problems[0]}{more}: {so}"
        if any("is not set" in problem for problem in problems):
            asides.append(f"give the service's variables: --env-file {SERVICE_ENV_FILE}")
    return f"{said} ({'; '.join(asides)})" if asides else said


def check_key(args: argparse.Namespace, config: Config | ConfigError, config_dir: str) -> None:
    """Refuse a key that could never serve (a group the config lacks, or groups where a
    config there does not load); say when a budget has nothing to count (no model has a
    price)."""
    if isinstance(config, ConfigError):
        if args.groups and Path(config_dir).is_dir():
            done = "made" if args.action == "create" else "changed"
            so = f"its groups cannot be checked, so the key was not {done}"
            raise Unchecked(unread(config, config_dir, so))
        unchecked = "its name and groups were" if args.groups else "its name was"
        so, aside = f"{unchecked} not checked against it", "a keys-file key of the same name wins"
        print(f"hxgw keys: note: {unread(config, config_dir, so, aside)}", file=sys.stderr)
        return
    groups = config.routing.groups
    unknown = [g for g in args.groups or () if g not in groups]
    if unknown:
        hint = did_you_mean(unknown[0], groups)
        raise BadUsage(
            f"no group named {unknown[0]!r}{hint} in {config_dir} (its groups: {', '.join(groups)})"
        )
    budgets = (args.budget, args.user_budget)
    if any(isinstance(b, float) for b in budgets) and not any(
        m.price for m in config.models.values()
    ):
        print(
            "hxgw keys: note: no model of the config has a price, so the budget counts "
            "nothing until one has (model_registry.yaml: price)",
            file=sys.stderr,
        )
