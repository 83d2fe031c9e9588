"""`hxgw keys` and `hxgw teams`: their command lines, each value checked as it is read, so
that a bad one is a usage error that names it (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from collections.abc import Callable

from hxgw.config.reader import name_problem
from hxgw.config.schema import PERIODS
from hxgw.keys.store import CLEARED, Cleared
from hxgw.tools import check_config
from hxgw.tools.usage_cli import MAX_DURATION, duration


class BadUsage(Exception):
    """A request wrong whatever the store holds, found past the parser (a group the config
    lacks, MASTER_KEY's name, an update that changes nothing): exit 2, as the parser's.
    A key the store lacks, or has revoked, is a failure instead (exit 1)."""


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _name(text: str, what: str = "key") -> str:
    if not NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"a {what} name is 1-64 letters, digits, '.', '_' or '-': {text!r}"
        )
    return text


def team_name(text: str) -> str:
    # `none` takes a key out of its team (`--team none`): no team may be called so.
    if text == "none":
        raise argparse.ArgumentTypeError(
            "'none' takes a key out of its team: name the team otherwise"
        )
    return _name(text, "team")


def _team(text: str) -> str | Cleared:
    """A team's name, or `none`: out of its team. A keys file's team may have a name
    `hxgw teams` would not make (`a/b`): any its file takes is taken here."""
    if text.strip() == "none":
        return CLEARED
    if name_problem(text, "") is not None:
        raise argparse.ArgumentTypeError(f"not a team's name, or none: {text!r}")
    return text


DIGITS = re.compile(r"[0-9]+")
AMOUNT = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")

MAX_LIMIT = 10**15
"""The largest limit or budget taken: beyond it a limit is no limit, and the stores'
64-bit integers (and Lua's exact numbers) end not far above."""


def _positive(text: str) -> int | Cleared:
    if text.strip() == "none":
        return CLEARED
    # ASCII digits alone: int() also reads a full-width 5 as 5 and '1_0' as 10, and
    # str.isdigit() takes '²', which int() then refuses.
    if not DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"not a whole number from 1 to 10^15, or none: {text!r}")
    return int(text)


def _groups(text: str) -> list[str]:
    """Group names, or `all` (an empty list: no restriction). Empty text is refused: a
    script's unset variable must not widen a key to every group."""
    if text.strip() == "all":
        return []
    # A group named twice is stored once, where it first was.
    groups = list(dict.fromkeys(g.strip() for g in text.split(",") if g.strip()))
    if not groups:
        raise argparse.ArgumentTypeError("name at least one group, or all")
    return groups


def _money(text: str) -> float | Cleared:
    if text.strip() == "none":
        return CLEARED
    # A plain decimal: float() also reads '1_0', full-width digits, '1e3', 'inf', 'nan'.
    value = float(text) if AMOUNT.fullmatch(text.strip()) else -1.0
    if not 0 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"not an amount of money, or none: {text!r}")
    return value


def _date(text: str) -> float | Cleared:
    """2027-01-31 (its start, UTC) or an ISO time with a zone, in the future (a key that
    has expired already is revoked, not made); `never` takes an expiry away."""
    if text.strip() == "never":
        return CLEARED
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date like 2027-01-31, or never: {text!r}"
        ) from None
    if when.tzinfo is None and not _date_alone(text.strip()):
        # A time without a zone: UTC's, or the operator's own? Asked, not guessed.
        raise argparse.ArgumentTypeError(
            f"{text!r} has a time but no zone: add one (Z for UTC, or +01:00), or give a date"
        )
    stamp = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    if stamp > time.time() + MAX_DURATION:  # 9999-12-31 in another zone is no UTC date
        raise argparse.ArgumentTypeError(f"{text!r} is more than a hundred years away")
    if stamp <= time.time():
        raise argparse.ArgumentTypeError(f"{text!r} has passed: give a date to come")
    return stamp


def _date_alone(text: str) -> bool:
    """Whether `text` is a date with no time of day (2027-01-31)."""
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _grace(text: str) -> float:
    """A duration like 1h or 7d, or 0s: the old secret stops at once."""
    return 0.0 if text.strip() in ("0", "0s", "0m", "0h", "0d") else duration(text)


def limit_arguments(sub: argparse.ArgumentParser, prefix: str, of: str) -> None:
    """--rpm, --tpm, --max-parallel, --budget and --budget-period: a key's own limits, or,
    each with `prefix` (`user-`), those it gives each end user (`of`, in the help)."""
    for option, about in (
        ("rpm", "requests per minute"),
        ("tpm", "tokens per minute"),
        ("max-parallel", "requests at once"),
    ):
        sub.add_argument(
            f"--{prefix}{option}", type=_positive, help=f"{about}{of} (none: no limit)"
        )
    sub.add_argument(
        f"--{prefix}budget",
        type=_money,
        metavar="AMOUNT",
        help=f"money per budget period{of}, in the currency of the models' price (none: no budget)",
    )
    sub.add_argument(
        f"--{prefix}budget-period",
        choices=tuple(PERIODS),
        help="default: 1d" if sub.prog.endswith("create") else "default: as it was",
    )


Action = Callable[..., argparse.ArgumentParser]


def _actions(
    parser: argparse.ArgumentParser, config_help: str, name_type: Callable[[str], str]
) -> Action:
    """What adds one action (`create`, `list`, ...) to `parser`, each with the options
    every one has, and a NAME (of `name_type`) unless told it has none."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, summary: str, *, named: bool = True) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=summary, description=summary)
        if named:
            sub.add_argument("name", type=name_type, metavar="NAME")
        sub.add_argument("--config-dir", help=config_help)
        check_config.add_arguments(sub, "read the config and find the store")
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    return action


def add_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    action = _actions(parser, config_help, _name)
    for sub in (
        action("create", "make a key; its secret is printed once"),
        action("update", "change a key's limits, groups or expiry"),
    ):
        # `none` (and `never`) take a limit (an expiry) away again.
        limit_arguments(sub, "", "")
        limit_arguments(sub, "user-", " of each end user")
        sub.add_argument(
            "--team",
            type=_team,
            metavar="TEAM",
            help="the team it is in, whose limits all its keys share (hxgw teams; none: in none)",
        )
        sub.add_argument(
            "--groups",
            type=_groups,
            metavar="G1,G2",
            help="the only groups it may use (all: every group)"
            + (", default: all" if sub.prog.endswith("create") else ", default: as it was"),
        )
        sub.add_argument(
            "--expires",
            type=_date,
            metavar="DATE",
            help="e.g. 2027-01-31 (its start, UTC), 2027-01-31T09:00+01:00, or never",
        )
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


def add_team_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    action = _actions(parser, config_help, team_name)
    for sub in (
        action("create", "make a team: limits its keys share, groups it keeps them to"),
        action("update", "change a team's limits or groups"),
    ):
        limit_arguments(sub, "", " of the team")
        sub.add_argument(
            "--groups",
            type=_groups,
            metavar="G1,G2",
            help="the only groups its keys may use, whatever groups each names (all: every"
            " group)"
            + (", default: all" if sub.prog.endswith("create") else ", default: as it was"),
        )
    action("list", "the teams, their limits, groups, keys and spend this period", named=False)
    action("delete", "remove a team that has no keys")
