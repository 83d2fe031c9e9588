"""`hxgw keys`: make, list, change, rotate and revoke client keys in the store.

It works on the gateway's database directly (found as the gateway finds it:
gateway.yaml's `store`, HX_STATE_DIR, DATABASE_URL); serving gateways see each
change within a second. A new secret goes to standard output alone, once, so
`KEY=$(hxgw keys create app)` keeps it; what was done goes to standard error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from hxgw.config import Config, load_config
from hxgw.config.schema import PERIODS
from hxgw.errors import ConfigError
from hxgw.keys.store import KeyStore, KeyStoreError, StoredKey
from hxgw.store import Connection, NoStore, StoreError, open_database
from hxgw.store.locate import SQLITE_FILE
from hxgw.tools.usage_cli import MAX_DURATION, duration, store_settings

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _name(text: str) -> str:
    if not NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"a key name is 1-64 letters, digits, '.', '_' or '-': {text!r}")  # fmt: skip
    return text


MAX_LIMIT = 10**15
"""The largest limit or budget taken: beyond it a limit is no limit, and the stores'
64-bit integers (and Lua's exact numbers) end not far above."""


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"not a whole number from 1 to 10^15: {text!r}")
    return int(text)


def _groups(text: str) -> list[str]:
    """Group names, or `all` (an empty list: no restriction). Empty text is refused: a
    script's unset variable must not widen a key to every group."""
    if text.strip() == "all":
        return []
    groups = [g.strip() for g in text.split(",") if g.strip()]
    if not groups:
        raise argparse.ArgumentTypeError("name at least one group, or all")
    return groups


def _money(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_LIMIT:  # NaN and infinity too
        raise argparse.ArgumentTypeError(f"not an amount of money: {text!r}")
    return value


def _date(text: str) -> float:
    """2027-01-31 (its start, UTC) or an ISO time with a zone, in the future (a key that
    has expired already is revoked, not made)."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2027-01-31: {text!r}") from None
    stamp = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    if stamp > time.time() + MAX_DURATION:  # 9999-12-31 in another zone is no UTC date
        raise argparse.ArgumentTypeError(f"{text!r} is more than a hundred years away")
    if stamp <= time.time():
        raise argparse.ArgumentTypeError(f"{text!r} has passed: give a date to come")
    return stamp


def _grace(text: str) -> float:
    """A duration like 1h or 7d, or 0s: the old secret stops at once."""
    return 0.0 if text.strip() in ("0", "0s", "0m", "0h", "0d") else duration(text)


def add_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, summary: str, *, named: bool = True) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=summary, description=summary)
        if named:
            sub.add_argument("name", type=_name, metavar="NAME")
        sub.add_argument("--config-dir", help=config_help)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    for sub in (action("create", "make a key; its secret is printed once"),
                action("update", "change a key's limits, groups or expiry")):  # fmt: skip
        sub.add_argument("--rpm", type=_positive, help="requests per minute")
        sub.add_argument("--tpm", type=_positive, help="tokens per minute")
        sub.add_argument("--max-parallel", type=_positive, help="requests at once")
        sub.add_argument(
            "--budget",
            type=_money,
            metavar="AMOUNT",
            help="money per budget period, in the currency of the models' price",
        )
        sub.add_argument(
            "--budget-period",
            choices=tuple(PERIODS),
            help="default: 1d" if sub.prog.endswith("create") else "default: as it was",
        )
        sub.add_argument(
            "--groups", type=_groups, metavar="G1,G2",
            help="the only groups it may use (all: every group)"
            + (", default: all" if sub.prog.endswith("create") else ", default: as it was"),
        )  # fmt: skip
        sub.add_argument("--expires", type=_date, metavar="DATE", help="e.g. 2027-01-31 (UTC)")
    action("list", "the keys, never their secrets", named=False)
    rotate = action("rotate", "a new secret; the old one works for a grace period")
    rotate.add_argument(
        "--grace",
        type=_grace,
        default="24h",
        metavar="DURATION",
        help="how long the old secret keeps working: 0s, 1h, 7d (default: 24h)",
    )
    action("revoke", "the key stops working within a second, everywhere")


def run(args: argparse.Namespace, config_dir: str, env: Mapping[str, str]) -> int:
    settings = store_settings("keys", config_dir, env)
    if settings is None:
        return 1
    # `list` only reads: where there is no store yet, it makes none.
    new = not settings.database_url and not (settings.state_dir / SQLITE_FILE).exists()
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
            print("hxgw keys: note: that store is new; a gateway that keeps its own elsewhere"
                  " will not know this key (is HX_STATE_DIR the gateway's?)",
                  file=sys.stderr)  # fmt: skip
        return done
    except NoStore:
        print("[]" if args.json else "no keys yet: hxgw keys create NAME")
        return 0
    except KeyStoreError as exc:
        print(f"hxgw keys: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"hxgw keys: cannot use the key store: {exc}", file=sys.stderr)
        return 1


def _act(args: argparse.Namespace, store: KeyStore, connection: Connection, config_dir: str,
         env: Mapping[str, str]) -> int:  # fmt: skip
    if args.action == "list":
        keys = store.all(connection)
        print(json.dumps([k.public() for k in keys], indent=2) if args.json else _table(keys))
        return 0
    config = _config(config_dir, env)
    if args.action in ("create", "update"):
        _check(args, config, config_dir)
    if args.action == "create":
        if args.name == "master" or (config and any(k.name == args.name for k in config.keys)):
            raise KeyStoreError(f"the config already has a key named {args.name!r}")
        previous = store.get(connection, args.name)
        secret = store.create(connection, args.name, _settings(args))
        if previous is not None:  # a revoked key's: create refuses a live one
            print(f"hxgw keys: note: {args.name!r} was a revoked key's name; the new key keeps"
                  " none of its limits, but spend is counted by name: the old key's this"
                  " period counts against a new budget, and the ledger shows both under it",
                  file=sys.stderr)  # fmt: skip
        return _secret(args, store.get(connection, args.name), secret, "created")
    if args.action == "rotate":
        secret = store.rotate(connection, args.name, args.grace)
        return _secret(args, store.get(connection, args.name), secret, "rotated")
    key = (store.update(connection, args.name, _settings(args)) if args.action == "update"
           else store.revoke(connection, args.name))  # fmt: skip
    print(json.dumps(key.public()) if args.json else f"{args.action}d key {key.name}")
    return 0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    groups = args.groups
    return {"rpm": args.rpm, "tpm": args.tpm, "max_parallel": args.max_parallel,
            "budget": args.budget, "budget_period": args.budget_period, "groups": groups,
            "expires": args.expires}  # fmt: skip


def _secret(args: argparse.Namespace, key: StoredKey | None, secret: str, done: str) -> int:
    assert key is not None
    if args.json:
        print(json.dumps({**key.public(), "secret": secret}))
    else:
        print(secret)
        print(f"{done} key {key.name}: the secret above is shown once; hxgw keeps only its "
              "hash", file=sys.stderr)  # fmt: skip
    return 0


def _config(config_dir: str, env: Mapping[str, str]) -> Config | None:
    """The gateway's config, where there is one to read: what a key may name is checked
    against it. (`master`, MASTER_KEY's name, is taken whether or not it is set here.)"""
    try:
        return load_config(config_dir, env, serving=False)
    except ConfigError:
        return None


def _check(args: argparse.Namespace, config: Config | None, config_dir: str) -> None:
    """Refuse a key that could never serve (a group the config lacks); say when a budget
    has nothing to count (no model has a price)."""
    if config is None:
        if args.groups:
            print(
                f"hxgw keys: note: no readable config in {config_dir}, so the groups were not"
                " checked (give --config-dir)",
                file=sys.stderr,
            )
        return
    groups = config.routing.groups
    unknown = [g for g in args.groups or () if g not in groups]
    if unknown:
        raise KeyStoreError(
            f"no group named {unknown[0]!r} in {config_dir} (its groups: {', '.join(groups)})"
        )
    if args.budget is not None and not any(m.price for m in config.models.values()):
        print(
            "hxgw keys: note: no model of the config has a price, so the budget counts "
            "nothing until one has (model_registry.yaml: price)",
            file=sys.stderr,
        )


def _table(keys: list[StoredKey]) -> str:
    head = ("NAME", "STATE", "GROUPS", "RPM", "TPM", "PARALLEL", "BUDGET", "EXPIRES")
    rows: list[tuple[str, ...]] = [head]
    for k in keys:
        budget = "-" if k.budget is None else f"{k.budget:g}/{k.budget_period}"
        rows.append((k.name, _state(k), ",".join(k.groups) if k.groups else "all",
                     *(str(v) if v is not None else "-" for v in (k.rpm, k.tpm, k.max_parallel)),
                     budget, _when(k.expires)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    return "\n".join(lines) if keys else "no keys yet: hxgw keys create NAME"


def _state(key: StoredKey) -> str:
    now = dt.datetime.now(dt.UTC).timestamp()
    if key.revoked is not None:
        return "revoked"
    if key.expires is not None and key.expires <= now:
        return "expired"
    if key.previous_until is not None and key.previous_until > now:
        return f"rotating (old until {_when(key.previous_until)})"
    return "active"


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")
