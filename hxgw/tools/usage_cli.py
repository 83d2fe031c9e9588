"""`hxgw usage`: what was used, from the usage ledger, per key, model, day or end user
(printed by `usage_render`).

It finds the store as the gateway does (gateway.yaml's `store` section, HX_STATE_DIR,
DATABASE_URL: hxgw.config.load_store_settings) and only reads: a missing store is an
error, never a new empty one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from hxgw.config import StoreSettings, load_store_settings
from hxgw.errors import ConfigError
from hxgw.store import NoStore, StoreError, open_database
from hxgw.tools.state_owner import denied, give_to_owner
from hxgw.tools.usage_render import FORMATS, RENDERERS, Asked, printable, window
from hxgw.usage import GROUPINGS, MIGRATIONS, ledger_exists, ledger_version, totals

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_DURATION = 36500 * 86400
"""A hundred years: longer windows and grace periods are no different, and dates past
them overflow what a timestamp holds."""


def duration(text: str) -> float:
    """`30m`, `24h`, `7d` (or `90s`) in seconds."""
    found = re.fullmatch(r"([0-9]{1,12})([smhd])", text.strip())  # \d takes full-width digits too
    if not found or int(found[1]) == 0:
        raise argparse.ArgumentTypeError(f"not a duration like 30m, 24h or 7d: {text!r}")
    seconds = int(found[1]) * _UNITS[found[2]]
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r} is over {MAX_DURATION // 86400} days")
    return float(seconds)


def month(text: str) -> tuple[float, float]:
    """`2026-11`: that calendar month in UTC, as its first moment and the next month's."""
    found = re.fullmatch(r"([0-9]{4})-([0-9]{2})", text.strip())
    # A date's years are 1 to 9999, and the month's end must be one too: not 9999-12.
    if not found or not 1 <= int(found[2]) <= 12 or not 1 <= int(found[1]) <= 9998:
        raise argparse.ArgumentTypeError(f"not a month like 2026-11 (years 0001-9998): {text!r}")
    year, number = int(found[1]), int(found[2])
    after = (year + 1, 1) if number == 12 else (year, number + 1)
    return _utc(year, number), _utc(*after)


def _utc(year: int, number: int) -> float:
    return dt.datetime(year, number, 1, tzinfo=dt.UTC).timestamp()


def add_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    parser.add_argument("--config-dir", help=config_help)
    parser.add_argument("--key", metavar="NAME", help="only the requests of this client key")
    parser.add_argument(
        "--user",
        metavar="ID",
        help="only the requests for this end user (as the body named it: user, "
        "safety_identifier, metadata.user_id)",
    )
    parser.add_argument(
        "--team", metavar="NAME", help="only the requests of keys while they were in this team"
    )
    window = parser.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        type=duration,
        default="24h",
        metavar="DURATION",
        help="the window that ends now: 30m, 24h, 7d (default: 24h)",
    )
    window.add_argument(
        "--month",
        type=month,
        metavar="YYYY-MM",
        help="a calendar month in UTC instead, as a bill covers it: 2026-11",
    )
    parser.add_argument(
        "--by",
        choices=GROUPINGS,
        default="key",
        help="one line per key, model, UTC day, end user or team (default: key)",
    )
    parser.add_argument(
        "--top",
        type=_lines,
        metavar="N",
        help="only the N lines that cost most (then those with most requests)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )


def _lines(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a number of lines from 1: {text!r}")
    return int(text)


RUN_STATE = ".hxgw-state"
"""Where `make run` (`hxgw quickstart`) keeps its keys and usage, in the checkout."""


def store_settings(command: str, config_dir: str, env: Mapping[str, str]) -> StoreSettings | None:
    """Where the gateway of `config_dir` keeps its state; None, said on stderr, when its
    settings are wrong (the commands that read the store then exit 1)."""
    try:
        settings = load_store_settings(config_dir, env)
    except ConfigError as exc:
        print(f"hxgw {command}: {config_dir}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return None
    here = Path.cwd() / RUN_STATE
    unset = "HX_STATE_DIR" not in env and settings.database_url is None
    if unset and here.is_dir() and here != settings.state_dir:
        # Without HX_STATE_DIR a shell picks the service's store, not `make run`'s: a key
        # made there opens nothing on the gateway this checkout runs.
        print(
            f"hxgw {command}: note: {settings.state_dir} is not `make run`'s store "
            f"({RUN_STATE} here): for that one, export HX_STATE_DIR=$PWD/{RUN_STATE}",
            file=sys.stderr,
        )
    return settings


def run(args: argparse.Namespace, config_dir: str, env: Mapping[str, str]) -> int:
    settings = store_settings("usage", config_dir, env)
    if settings is None:
        return 1
    try:
        return _report(args, settings)
    finally:
        give_to_owner(settings)


def _report(args: argparse.Namespace, settings: StoreSettings) -> int:
    since, until = args.month if args.month else (time.time() - args.since, None)
    database = open_database(settings.database_url, settings.state_dir, create=False)
    try:
        with database.connect() as connection:
            if not ledger_exists(connection):
                print(f"hxgw usage: no usage ledger in {database.where} yet", file=sys.stderr)
                return 1
            if (version := ledger_version(connection)) < len(MIGRATIONS):
                print(
                    f"hxgw usage: the usage ledger in {database.where} is at schema version"
                    f" {version}, this hxgw reads {len(MIGRATIONS)}: restart the gateway,"
                    " which migrates it as it starts",
                    file=sys.stderr,
                )
                return 1
            lines = totals(
                connection,
                since=since,
                until=until,
                by=args.by,
                key=args.key,
                user=args.user,
                team=args.team,
                top=args.top,
            )
    except NoStore as exc:
        print(f"hxgw usage: {exc} (no gateway has recorded usage there)", file=sys.stderr)
        return 1
    except StoreError as exc:
        why = denied(exc, settings)
        said = (
            f"cannot read the usage ledger {why}" if why else f"cannot read the usage ledger: {exc}"
        )
        print(f"hxgw usage: {said}", file=sys.stderr)
        return 1
    render = RENDERERS[args.format]
    if args.format == "table":
        print(f"hxgw usage: the store is {database.where}", file=sys.stderr)
        if not lines and (args.key, args.user, args.team) != (None, None, None):  # mistyped?
            print(f"hxgw usage: {_none_of(args, window(since, until))}", file=sys.stderr)
    sys.stdout.write(render(lines, Asked(args.by, since, until, args.top)))
    return 0


def _none_of(args: argparse.Namespace, window: str) -> str:
    """That no requests were found, by the key's name and the end user asked for."""
    by = f" by a key named {args.key!r}" if args.key is not None else ""
    of = f" for an end user '{printable(args.user)}'" if args.user is not None else ""
    of += f" in a team named {args.team!r}" if args.team is not None else ""
    hint = " (hxgw keys list, or keys.yaml, has the names)" if args.key is not None else ""
    return f"no requests{by}{of} {window}{hint}"
