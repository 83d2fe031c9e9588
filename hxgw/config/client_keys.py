"""Client keys from the environment (`MASTER_KEY`) and from `auth.keys_file`, with
what each may use: groups, and limits (requests and tokens per minute, requests at
once, a budget per period)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from hxgw.config.gateway import AUTH_KEYS, GATEWAY
from hxgw.config.reader import (
    IN_ENV_FILE,
    NOT_IN_A_HEADER,
    Problems,
    Section,
    fits_a_header,
    kind_of,
    name_problem,
)
from hxgw.config.schema import (
    GUESSABLE_UNDER,
    LIMIT_KEYS,
    MASTER_KEY_NAME,
    PERIODS,
    ClientKey,
    KeyLimits,
    Team,
    key_digest,
)
from hxgw.config.teams import read_groups, read_teams, team_of
from hxgw.config.yaml_file import read_yaml


def read_client_keys(
    top: Section,
    directory: Path,
    env: Mapping[str, str],
    problems: Problems,
    files: list[Path],
    *,
    stored_keys: Callable[[], bool] | None,
    groups: Collection[str] = (),
    per_user: KeyLimits | None = None,
) -> tuple[tuple[ClientKey, ...], tuple[Team, ...]]:
    """MASTER_KEY's key and the keys file's. A gateway that serves needs a key: for one,
    `stored_keys()` says whether the store holds one made by `hxgw keys` (asked only when
    there is no other); None when the config is only read. A key may name only `groups`
    (routing.yaml's; none known when it could not be read). A file's key that gives its
    end users no limits gives them `per_user` (`auth.per_user`); MASTER_KEY's, the
    operator's, none. With the keys, the keys file's teams."""
    keys: list[ClientKey] = []
    teams: dict[str, Team | None] = {}
    master = env.get("MASTER_KEY")
    if master:
        if not fits_a_header(master):
            # A client sends its key as one word: this one would never match.
            problems.add(
                "environment", "MASTER_KEY", f"has characters {NOT_IN_A_HEADER}{IN_ENV_FILE}"
            )
        short = len(master) < GUESSABLE_UNDER
        keys.append(ClientKey(name=MASTER_KEY_NAME, digest=key_digest(master), guessable=short))
    keys_file = top.section("auth", AUTH_KEYS).string("keys_file")
    if keys_file:
        path = directory / keys_file
        if not path.exists():  # one problem, that names the setting, not two
            problems.add(GATEWAY, "auth.keys_file", f"no such file: {path}")
            return tuple(keys), ()
        doc = read_yaml(path, problems, files, required=True)
        section = Section(path.name, "", doc, problems, frozenset({"keys", "teams"}))
        known = {key.digest: key.name for key in keys}
        teams = read_teams(section, read_key_limits, groups)
        keys.extend(_key_entries(section, known, groups, per_user, teams))
    if stored_keys is not None and not keys and not keys_file and not stored_keys():
        problems.add(
            GATEWAY,
            "auth",
            "no client key: set MASTER_KEY in the environment (under systemd, in "
            "/etc/hx-gateway-ml.env), or auth.keys_file, or make one: hxgw keys create NAME",
        )
    return tuple(keys), tuple(team for team in teams.values() if team is not None)


def _key_entries(
    doc: Section,
    secrets: dict[bytes, str],
    known: Collection[str],
    default: KeyLimits | None,
    teams: dict[str, Team | None],
) -> list[ClientKey]:
    """The file's keys; `secrets` maps the digests of keys read before to their names;
    `default`: what each end user of a key that says nothing of them gets; `teams`: the
    file's, by name."""
    raw = doc.raw("keys")
    if not isinstance(raw, list):
        doc.report(f"must be a list of keys, got {kind_of(raw)}", "keys")
        return []
    out: list[ClientKey] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        entry = Section(
            doc.file,
            f"keys[{i}]",
            item,
            doc.problems,
            frozenset({"name", "key", "key_sha256", "groups", "per_user", "team", *LIMIT_KEYS}),
        )
        name = entry.string("name", required=True)
        where = "in logs, metrics and usage reports (a CSV a spreadsheet opens)"
        if name and (wrong := name_problem(name, where)) is not None:
            entry.report(wrong, "name")  # as a stored key's, whose names are narrower
            continue
        if name == MASTER_KEY_NAME or name in names:
            # A name is the key in logs, limits, the ledger and what it owns.
            taken = "is MASTER_KEY's" if name == MASTER_KEY_NAME else "is another key's"
            entry.report(f"{name!r} {taken}: each key needs a name of its own", "name")
            continue
        if name:
            names.add(name)
        secret, hashed = entry.string("key"), entry.string("key_sha256")
        if (secret is None) == (hashed is None):
            entry.report("needs exactly one of key, key_sha256")
            continue
        try:
            digest = key_digest(secret) if secret else bytes.fromhex(hashed)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            entry.report("must be 64 hex digits", "key_sha256")
            continue
        if digest in secrets:
            # One secret, two keys: the request would get one of them, its groups and limits
            # not the ones the operator meant for it.
            entry.report(f"has the same secret as the key {secrets[digest]!r}")
            continue
        secrets[digest] = name or f"keys[{i}]"
        groups = read_groups(entry, known) if entry.has("groups") else None
        if name:
            limits = read_key_limits(entry)
            per_user = _per_user(entry) if entry.has("per_user") else default
            short = secret is not None and len(secret) < GUESSABLE_UNDER
            team = team_of(entry, teams)
            if groups and team is not None and team.groups is not None and not groups & team.groups:
                # It would reach no group at all: refused everywhere it was meant to go.
                its = ", ".join(sorted(team.groups))
                entry.report(f"shares no group with its team {team.name!r} ({its})", "groups")
            out.append(
                ClientKey(
                    name=name,
                    digest=digest,
                    groups=groups,
                    limits=limits,
                    per_user=per_user,
                    team=team,
                    guessable=short,
                )
            )
    return out


def read_per_user_default(top: Section) -> KeyLimits | None:
    """`auth.per_user`: what each end user of a key gets when the key gives them nothing
    of its own (LiteLLM's `max_end_user_budget`, with every limit a key may have)."""
    auth = top.section("auth", AUTH_KEYS)
    return _per_user(auth) if auth.has("per_user") else None


def _per_user(entry: Section) -> KeyLimits | None:
    """The limits each end user of the key gets: `per_user`, a mapping of the same limits
    a key has. One that sets none would limit nothing, which is said."""
    section = entry.section("per_user", frozenset(LIMIT_KEYS))
    limits = read_key_limits(section)
    if limits is not None and not limits.limit_nothing():
        return limits
    # Each request naming its end user would pay for a reservation that limits nothing.
    # (A limit given but wrong, or a value that is no mapping, is said as such.)
    raw = entry.raw("per_user")
    if raw is None or (isinstance(raw, dict) and all(raw.get(k) is None for k in LIMIT_KEYS[:4])):
        section.report(f"sets no limit: give one of {', '.join(LIMIT_KEYS[:4])}, or leave it out")
    return None


def read_key_limits(entry: Section) -> KeyLimits | None:
    """A key's limits; None when it has none."""
    if not any(entry.has(name) for name in LIMIT_KEYS):
        return None
    period = entry.string("budget_period", "1d")
    if period not in PERIODS:
        entry.report(f"must be one of {', '.join(PERIODS)}, got {period!r}", "budget_period")
        period = "1d"
    return KeyLimits(
        rpm=entry.number("rpm", None, positive=True, integer=True),
        tpm=entry.number("tpm", None, positive=True, integer=True),
        max_parallel=entry.number("max_parallel", None, positive=True, integer=True),
        budget=entry.number("budget", None, minimum=0.0),
        budget_period_s=PERIODS[period],
    )
