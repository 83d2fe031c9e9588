"""Teams from the keys file (`teams`): keys that share limits. A team has a name, the
limits a key may have and the groups a key may name; a key joins one with `team: NAME`
and is held to the team's limits, counted over all its keys, beside its own, and kept to
the team's groups as well as its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from hxgw.config.reader import Section, kind_of, name_problem
from hxgw.config.schema import LIMIT_KEYS, KeyLimits, Team
from hxgw.errors import did_you_mean

ReadLimits = Callable[[Section], KeyLimits | None]


def read_groups(entry: Section, known: Collection[str]) -> frozenset[str]:
    """The groups a key or a team may use; each must be one routing.yaml has (`known`;
    none when it could not be read), or the key would be refused everywhere it was meant
    to go."""
    listed = entry.str_list("groups")
    if not listed:
        entry.report("names no group: leave groups out for every group, or name one", "groups")
    for i, group in enumerate(listed):
        if known and group not in known:
            hint = did_you_mean(group, known)
            entry.report(f"unknown group {group!r}{hint}", f"groups[{i}]")
    return frozenset(listed)


def read_teams(
    doc: Section, read_limits: ReadLimits, known: Collection[str] = ()
) -> dict[str, Team | None]:
    """The keys file's teams by name (None: one named but wrong, which is said once,
    not again for each key in it); none when it has none. A team that neither limits
    nor keeps to groups would cost each of its keys' requests for nothing, and is said."""
    if not doc.has("teams"):
        return {}
    raw = doc.raw("teams")
    if not isinstance(raw, list):
        doc.report(f"must be a list of teams, got {kind_of(raw)}", "teams")
        return {}
    teams: dict[str, Team | None] = {}
    for i, item in enumerate(raw):
        entry = Section(
            doc.file, f"teams[{i}]", item, doc.problems, frozenset({"name", "groups", *LIMIT_KEYS})
        )
        name = entry.string("name", required=True)
        if not name:
            continue
        if (wrong := name_problem(name, "in logs and refusals")) is not None:
            entry.report(wrong, "name")
            continue
        if name == "none":  # `hxgw keys --team none` takes a key out of its team
            entry.report("'none' is no team's name: it takes a key out of its team", "name")
            continue
        if name in teams:
            entry.report(f"{name!r} is another team's: each team needs a name of its own", "name")
            continue
        limits = read_limits(entry) or KeyLimits()
        groups = read_groups(entry, known) if entry.has("groups") else None
        teams[name] = None
        if not limits.limit_nothing() or groups is not None:
            teams[name] = Team(name=name, limits=limits, groups=groups)
        elif all(entry.raw(limit) is None for limit in LIMIT_KEYS[:4]):
            # (A limit given but wrong is said as such.)
            entry.report(f"sets nothing: give groups or one of {', '.join(LIMIT_KEYS[:4])}")
    return teams


def team_of(entry: Section, teams: dict[str, Team | None]) -> Team | None:
    """The team a key's `team` names: one of the file's."""
    name = entry.string("team")
    if name is None:
        return None
    if name not in teams:
        known = ", ".join(sorted(teams)) or "none: add it under teams"
        entry.report(f"unknown team {name!r} (the file's teams: {known})", "team")
    return teams.get(name)
