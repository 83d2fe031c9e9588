"""Limits beside a key's own: those each end user of a key gets (`per_user` in the keys
file, `--user-*` in `hxgw keys`) and its team's (`teams` in the keys file): their names
in the limiters, and which of the sets of rate-limit headers an answer carries.

An end user is who the client's app said the request was for (`user`,
`safety_identifier`, or Anthropic's `metadata.user_id`): a key's end users are counted
apart, each against the key's `per_user` limits, in whichever store holds the key's
own. A request that names none is held to the key's limits alone.
"""

from __future__ import annotations

USER = " user "
"""Between a key's name and its end user's in the limiters' name for the pair: a key's
name has no spaces, so the first one ends it."""


def user_name(key_name: str, end_user: str) -> str:
    """The limiters' name for `end_user` of the key `key_name`."""
    return f"{key_name}{USER}{end_user}"


TEAM = "team="
"""Before a team's name in the limiters' name for it: no key's name has a `=`, so no
key's (nor any of its end users') begins so."""


def team_name(team: str) -> str:
    """The limiters' name for the team `team`."""
    return f"{TEAM}{team}"


def named(name: str) -> tuple[str, str | None]:
    """The key and the end user (None: the key's own limits) a limiter's name stands for
    (not a team's: `team_name`)."""
    key_name, _, end_user = name.partition(USER)
    return key_name, end_user or None


def tighter(key: dict[str, str], user: dict[str, str]) -> dict[str, str]:
    """The key's rate-limit headers, with those of requests or of tokens taken from the
    end user's where the end user has less left: an SDK paces itself by what is left of
    the limit that will refuse it first. Each kind's headers name it (`requests`,
    `tokens`) and say what is left in the one with `remaining`."""
    merged = dict(key)
    for kind in ("requests", "tokens"):
        theirs = {name: value for name, value in user.items() if kind in name}
        left, keys_left = _remaining(theirs), _remaining(key, kind)
        if left is not None and (keys_left is None or left < keys_left):
            merged.update(theirs)
    return merged


def _remaining(headers: dict[str, str], kind: str = "") -> int | None:
    for name, value in headers.items():
        if kind in name and "remaining" in name:
            return int(value)
    return None
