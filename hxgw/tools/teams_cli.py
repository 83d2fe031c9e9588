"""`hxgw teams`: make, list, change and delete teams in the key store. A team holds
limits that all its keys share (`hxgw keys create NAME --team TEAM`) and the groups it
keeps them to; serving gateways see each change within a second, as they see a key's.
The keys file's teams are listed beside the store's, and are changed in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from hxgw.config import Config, StoreSettings
from hxgw.config.schema import LIMIT_KEYS, PERIODS, KeyLimits, Team
from hxgw.errors import did_you_mean
from hxgw.keys.store import KeyStore, KeyStoreError
from hxgw.keys.team_store import StoredTeam, TeamStore
from hxgw.store import Connection, NoStore, StoreError, open_database
from hxgw.tools import check_config
from hxgw.tools.keys_check import read_config
from hxgw.tools.keys_list import limits_doc, limits_said
from hxgw.tools.state_owner import give_to_owner
from hxgw.tools.usage_cli import store_settings
from hxgw.units import money
from hxgw.usage import MIGRATIONS
from hxgw.usage.report import ledger_exists, ledger_version
from hxgw.usage.spend import spent_this_period


def run(args: argparse.Namespace, config_dir: str, env: Mapping[str, str]) -> int:
    given = check_config.with_env_file("teams", env, args.env_file)
    settings = None if given is None else store_settings("teams", config_dir, given)
    if given is None or settings is None:
        return 1
    try:
        return _run(args, settings, read_config(config_dir, given))
    except KeyStoreError as exc:
        print(f"hxgw teams: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"hxgw teams: cannot use the key store: {exc}", file=sys.stderr)
        return 1
    finally:
        give_to_owner(settings)


def _run(args: argparse.Namespace, settings: StoreSettings, config: object) -> int:
    # `list` only reads: where there is no store yet, it makes none.
    database = open_database(
        settings.database_url, settings.state_dir, create=args.action != "list"
    )
    if not args.json:  # HX_STATE_DIR left unset picks another store than the gateway's
        print(f"hxgw teams: the store is {database.where}", file=sys.stderr)
    keys = KeyStore(database)
    teams = TeamStore(keys)
    file_teams = {t.name: t for t in config.teams} if isinstance(config, Config) else {}
    if args.action == "list":
        try:
            with keys.connect() as connection:
                rows = _listed(teams, connection, file_teams, config)
        except NoStore:
            rows = _listed(teams, None, file_teams, config)
        print(json.dumps(rows, indent=2) if args.json else _table(rows))
        return 0
    if args.action in ("create", "update") and args.groups:
        _check_groups(args.groups, config)
    with keys.connect() as connection:
        given = {name: getattr(args, name, None) for name in LIMIT_KEYS}
        given["groups"] = getattr(args, "groups", None)
        if args.action == "create":
            if args.name in file_teams:
                raise KeyStoreError(f"the keys file has a team named {args.name!r}")
            team = teams.create(connection, args.name, given)
        elif args.action == "update":
            team = teams.update(connection, args.name, given)
        else:
            team = teams.delete(connection, args.name)
        members = [] if args.action == "delete" else teams.members(connection, team.name)
        shut_out = _reaching_nothing(keys, connection, members, team.groups)
    if team.team() is None and args.action != "delete":
        print(f"hxgw teams: note: {team.name} limits nothing yet", file=sys.stderr)
    if shut_out:
        print(
            "hxgw teams: note: keys of the team that now reach no group (their own groups"
            f" name none of its): {', '.join(shut_out)} (hxgw keys update {shut_out[0]}"
            " --groups ...)",
            file=sys.stderr,
        )
    done = f"{args.action}d team {team.name}"
    row = _stored_row(team, members)
    del row["spent"]  # only `list` reads the ledger
    print(json.dumps(row) if args.json else done)
    return 0


def _reaching_nothing(
    keys: KeyStore, connection: Connection, members: list[str], groups: Sequence[str] | None
) -> list[str]:
    """The team's keys that name groups of their own, none of them the team's `groups`:
    they would be refused everywhere."""
    if groups is None:
        return []
    named = [keys.get(connection, name) for name in members]
    return [k.name for k in named if k is not None and k.groups and not set(k.groups) & set(groups)]


def _check_groups(groups: list[str], config: object) -> None:
    """Refuse groups the gateway's config lacks: the team's keys would reach none of
    them. Where the config does not load, they cannot be checked: refused too."""
    if not isinstance(config, Config):
        raise KeyStoreError(
            "the config does not load, so the team's groups cannot be checked"
            " (hxgw check-config says why)"
        )
    known = config.routing.groups
    if unknown := [g for g in groups if g not in known]:
        raise KeyStoreError(
            f"no group named {unknown[0]!r}{did_you_mean(unknown[0], known)} in the config"
            f" (its groups: {', '.join(known)})"
        )


def _listed(
    teams: TeamStore, connection: Connection | None, file_teams: dict[str, Team], config: object
) -> list[dict[str, Any]]:
    """Each team as `--json` says it: the store's, then the keys file's, each with its
    keys and, for one with a budget, what its requests cost this period (`connection`
    None: there is no store yet)."""
    file_keys = list(config.keys) if isinstance(config, Config) else []
    rows = []
    if connection is not None:
        rows = [_stored_row(t, teams.members(connection, t.name)) for t in teams.all(connection)]
    for row in rows:
        # The gateway holds the stored team's keys to the file's team of its name.
        if row["name"] in file_teams:
            row["source"] = "store (hidden by the keys file)"
    for team in file_teams.values():
        keys = [k.name for k in file_keys if k.team is not None and k.team.name == team.name]
        if connection is not None:
            keys += teams.members(connection, team.name)
        rows.append(_row(team.name, "keys file", team.limits, keys, team.groups))
    stored = connection if connection is not None and ledger_exists(connection) else None
    if stored is not None and not _ledger_current(stored):
        stored = None
        for row in rows:
            row["spent"] = None  # unknown, not nothing
    now = time.time()
    for row in rows:
        if row["budget"] is not None and stored is not None:
            period_s = PERIODS[row["budget_period"]]
            spent = spent_this_period(stored, {period_s: {row["name"]}}, now, by="team")
            row["spent"] = spent.get((row["name"], period_s), (0, 0.0))[1]
    return rows


def _ledger_current(connection: Connection) -> bool:
    """Whether the usage ledger has teams: one a gateway has not migrated since an
    upgrade is said, and its spend left out."""
    if (version := ledger_version(connection)) < len(MIGRATIONS):
        print(
            f"hxgw teams: note: the usage ledger is at schema version {version}, this hxgw"
            f" reads {len(MIGRATIONS)}: spend is left out until the gateway restarts and"
            " migrates it",
            file=sys.stderr,
        )
        return False
    return True


def _stored_row(team: StoredTeam, keys: list[str]) -> dict[str, Any]:
    return _row(team.name, "store", team.limits(), keys, team.groups)


def _row(
    name: str,
    source: str,
    limits: KeyLimits | None,
    keys: list[str],
    groups: Collection[str] | None,
) -> dict[str, Any]:
    said = limits_doc(limits) if limits is not None else dict.fromkeys(LIMIT_KEYS)
    spent = 0.0 if said["budget"] is not None else None
    listed = None if groups is None else sorted(groups)
    return {"name": name, "source": source, **said, "groups": listed, "spent": spent, "keys": keys}


def _limits(row: dict[str, Any]) -> KeyLimits | None:
    """A row's limits again, for the table; None when it has none."""
    counts = {name: row[name] for name in LIMIT_KEYS[:4]}
    if all(value is None for value in counts.values()):
        return None
    return KeyLimits(**counts, budget_period_s=PERIODS[row["budget_period"] or "1d"])


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no teams yet: hxgw teams create NAME --budget 100"
    lines = [("NAME", "SOURCE", "LIMITS", "GROUPS", "SPENT", "LEFT", "KEYS")]
    for row in rows:
        spent = left = "-"
        if row["budget"] is not None and row["spent"] is not None:
            spent, left = money(row["spent"]), money(max(row["budget"] - row["spent"], 0.0))
        said, groups = limits_said(_limits(row)), ",".join(row["groups"] or ["all"])
        keys = ",".join(row["keys"]) or "-"
        lines.append((row["name"], row["source"], said, groups, spent, left, keys))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
