"""`hxgw keys`: make, list, change, rotate and revoke client keys in the store.

It works on the gateway's database directly (found as the gateway finds it:
gateway.yaml's `store`, HX_STATE_DIR, DATABASE_URL); serving gateways see each
change within a second. A new secret goes to standard output alone, once, so
`KEY=$(hxgw keys create app)` keeps it; what was done goes to standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from hxgw.config import MASTER_KEY_NAME, Config, KeyLimits, StoreSettings
from hxgw.errors import ConfigError
from hxgw.keys.store import Cleared, KeyStore, KeyStoreError
from hxgw.keys.stored_key import StoredKey
from hxgw.keys.team_store import TeamStore
from hxgw.store import (
    SQLITE_FILE,
    Connection,
    NoStore,
    StoreError,
    StoreTooOld,
    open_database,
)
from hxgw.tools import keys_list
from hxgw.tools.check_config import with_env_file
from hxgw.tools.keys_args import BadUsage
from hxgw.tools.keys_check import Unchecked, check_key, read_config, unread
from hxgw.tools.state_owner import denied, give_to_owner
from hxgw.tools.usage_cli import store_settings
from hxgw.tools.usage_render import iso


def run(args: argparse.Namespace, config_dir: str, env: Mapping[str, str]) -> int:
    given = with_env_file("keys", env, args.env_file)
    if given is None:
        return 1
    env = given
    settings = store_settings("keys", config_dir, env)
    if settings is None:
        return 1
    try:
        return _run(args, settings, config_dir, env)
    finally:
        give_to_owner(settings)


def _run(
    args: argparse.Namespace, settings: StoreSettings, config_dir: str, env: Mapping[str, str]
) -> int:
    # `list` only reads: where there is no store yet, it makes none.
    new = _new(settings)
    database = open_database(
        settings.database_url, settings.state_dir, create=args.action != "list"
    )
    store = KeyStore(database)
    if not args.json:
        # HX_STATE_DIR (or DATABASE_URL) left unset picks another store than the gateway's.
        print(f"hxgw keys: the store is {database.where}", file=sys.stderr)
    try:
        with store.connect() as connection:
            done = _act(args, store, connection, config_dir, env)
        if new and args.action == "create" and not args.json:
            print(
                "hxgw keys: note: that store is new; a gateway that keeps its own elsewhere"
                " will not know this key (is HX_STATE_DIR the gateway's?)",
                file=sys.stderr,
            )
        return done
    except NoStore:  # only `list` does not make one
        return _list(args, store, None, read_config(config_dir, env), config_dir)
    except BadUsage as exc:
        print(f"hxgw keys: {exc}", file=sys.stderr)
        return 2
    except (KeyStoreError, Unchecked) as exc:  # no such key, a revoked one, a name taken
        print(f"hxgw keys: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        if why := denied(exc, settings):
            print(f"hxgw keys: cannot read the key store {why}", file=sys.stderr)
            return 1
        hint = _where_hint(exc, settings.database_url is not None)
        print(f"hxgw keys: cannot use the key store: {exc}{hint}", file=sys.stderr)
        return 1


def _new(settings: StoreSettings) -> bool:
    """Whether a SQLite store is still to be made; unknown where this user may not look
    (connecting then says so)."""
    try:
        return not settings.database_url and not (settings.state_dir / SQLITE_FILE).exists()
    except OSError:
        return False


def _where_hint(exc: StoreError, postgres: bool) -> str:
    if postgres:  # no directory holds its keys: the server or the URL is what to check
        return " (is PostgreSQL up, and DATABASE_URL the gateway's?)"
    if "HX_STATE_DIR" in str(exc) or isinstance(exc, StoreTooOld):
        return ""
    if "database is locked" in str(exc):  # the right store, held by a writer for 10 s
        return " (another process holds it for writing: try again; `fuser` names it)"
    return NOT_THE_GATEWAYS


NOT_THE_GATEWAYS = (
    " (is it the gateway's? HX_STATE_DIR or DATABASE_URL as it has them: `make run`'s"
    " is .hxgw-state in the checkout, the service's /var/lib/hxgw, as root or its user)"
)


def _act(
    args: argparse.Namespace,
    store: KeyStore,
    connection: Connection,
    config_dir: str,
    env: Mapping[str, str],
) -> int:
    config = read_config(config_dir, env)
    # What each end user of a key that gives them nothing gets, as `--json` says it.
    default = config.per_user if isinstance(config, Config) else None
    if args.action == "list":
        return _list(args, store, connection, config, config_dir)
    if args.action == "update" and all(value is None for value in _settings(args).values()):
        raise BadUsage("nothing to change: give at least one option")
    if args.action in ("create", "update"):
        check_key(args, config, config_dir)
        _check_team(args.team, store, connection, config)
    in_config = isinstance(config, Config) and any(k.name == args.name for k in config.keys)
    changes = args.action in ("update", "rotate", "revoke")
    if changes and in_config and store.get(connection, args.name) is None:
        raise KeyStoreError(
            f"{args.name!r} is a key of the keys file (gateway.yaml's auth.keys_file): change"
            " or remove it there, then reload the gateway; hxgw keys changes the keys it made"
        )
    if args.action in ("update", "rotate") and in_config:
        # The gateway ignores the stored key while the config has its name: a secret or
        # a limit given it now does nothing there, which the operator must hear.
        print(
            f"hxgw keys: note: the keys file has a key named {args.name!r}, which wins: this"
            " stored key opens nothing while it does (hxgw keys list: hidden by the keys"
            " file)",
            file=sys.stderr,
        )
    if args.action == "create":
        if args.name == MASTER_KEY_NAME:
            raise BadUsage(f"{args.name!r} is MASTER_KEY's name: choose another")
        if in_config:
            raise KeyStoreError(f"the config already has a key named {args.name!r}")
        previous = store.get(connection, args.name)
        secret = store.create(connection, args.name, _settings(args))
        if previous is not None:  # a revoked key's: create refuses a live one
            print(
                f"hxgw keys: note: {args.name!r} was a revoked key's name; the new key keeps"
                " none of its limits, but spend is counted by name: the old key's this"
                " period counts against a new budget, and the ledger shows both under it",
                file=sys.stderr,
            )
        created = store.get(connection, args.name)
        _say_a_period_alone(args, created)
        return _secret(args, created, secret, "created", default)
    if args.action == "rotate":
        secret, before = store.rotate(connection, args.name, args.grace)
        if before.previous_until and before.previous_until > time.time():
            print(
                f"hxgw keys: note: the secret before the last rotation stops now, though its"
                f" grace ran to {iso(before.previous_until)}: a key keeps one old"
                " secret (its holders are told it was revoked)",
                file=sys.stderr,
            )
        if before.expires is not None and before.expires <= time.time():
            # A new secret keeps the key's expiry: printed alone, it reads as one that works.
            print(
                f"hxgw keys: note: {args.name} expired at {iso(before.expires)}, and so has"
                f" its new secret: hxgw keys update {args.name} --expires DATE (or never)",
                file=sys.stderr,
            )
        return _secret(args, store.get(connection, args.name), secret, "rotated", default)
    if args.action == "revoke" and (key := store.get(connection, args.name)) and key.revoked:
        # Revoking twice is done, not a mistake: a script may run again after a failure.
        said = f"key {key.name} was revoked already, at {iso(key.revoked)}"
    else:
        key = (
            store.update(connection, args.name, _settings(args))
            if args.action == "update"
            else store.revoke(connection, args.name)
        )
        said = f"{args.action}d key {key.name}"
        if args.action == "update":
            _say_a_period_alone(args, key)
    print(json.dumps(keys_list.public(key, default)) if args.json else said)
    return 0


def _check_team(
    team: str | Cleared | None, store: KeyStore, connection: Connection, config: object
) -> None:
    """A key may join a team `hxgw teams` made, or one of the keys file's."""
    if team is None or isinstance(team, Cleared):
        return
    in_file = isinstance(config, Config) and any(t.name == team for t in config.teams)
    stored = None if in_file else TeamStore(store).get(connection, team)
    if not in_file and stored is None:
        raise KeyStoreError(f"no team named {team!r} (hxgw teams create {team} makes one)")
    if stored is not None and stored.team() is None:
        print(
            f"hxgw keys: note: the team {team!r} sets nothing yet: its keys are held to"
            " their own limits and groups alone, and their requests count for no team"
            f" (hxgw teams update {team} --budget ... or --groups ...)",
            file=sys.stderr,
        )


def _say_a_period_alone(args: argparse.Namespace, key: StoredKey | None) -> None:
    """A --budget-period given to a key without a budget limits nothing yet; nor does a
    --user-budget-period to a key that gives its end users none."""
    if args.budget_period and key is not None and key.budget is None:
        print(
            f"hxgw keys: note: {key.name} has no budget: its period applies once it has"
            " one (--budget)",
            file=sys.stderr,
        )
    if args.user_budget_period and key is not None and key.user_budget is None:
        print(
            f"hxgw keys: note: {key.name} gives its end users no budget: its period applies"
            " once it does (--user-budget)",
            file=sys.stderr,
        )


def _list(
    args: argparse.Namespace,
    store: KeyStore,
    connection: Connection | None,
    config: Config | ConfigError,
    config_dir: str,
) -> int:
    """Where there is no store yet (`connection` None) the config's keys are all there is."""
    stored = store.all(connection) if connection is not None else []
    read = config if isinstance(config, Config) else None
    rows = keys_list.listed(stored, read, connection)
    if isinstance(config, ConfigError) and not args.json:
        why = unread(config, config_dir, "the keys of its keys file are not listed")
        print(f"hxgw keys: note: {why}", file=sys.stderr)
    if connection is None and not args.json:
        # A mistyped HX_STATE_DIR reads as a store with no keys: say there is none there.
        print(f"hxgw keys: note: no store there yet{NOT_THE_GATEWAYS}", file=sys.stderr)
    print(keys_list.as_json(rows) if args.json else keys_list.table(rows))
    return 0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    groups = args.groups
    return {
        "rpm": args.rpm,
        "tpm": args.tpm,
        "max_parallel": args.max_parallel,
        "budget": args.budget,
        "budget_period": args.budget_period,
        "user_rpm": args.user_rpm,
        "user_tpm": args.user_tpm,
        "user_max_parallel": args.user_max_parallel,
        "user_budget": args.user_budget,
        "user_budget_period": args.user_budget_period,
        "groups": groups,
        "expires": args.expires,
        "team": args.team,
    }


def _secret(
    args: argparse.Namespace,
    key: StoredKey | None,
    secret: str,
    done: str,
    default: KeyLimits | None,
) -> int:
    assert key is not None
    if args.json:
        print(json.dumps({**keys_list.public(key, default), "secret": secret}))
    else:
        print(secret, flush=True)  # above the note that names it, when both go to one pipe
        print(
            f"{done} key {key.name}: the secret above is shown once; hxgw keeps only its hash",
            file=sys.stderr,
        )
    return 0
