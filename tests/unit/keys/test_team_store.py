"""Teams in the key store: made, changed and deleted by `hxgw teams`, and the limits
a serving gateway holds each of their keys to."""

from __future__ import annotations

import hashlib
import time

import pytest
from structlog.testing import capture_logs

from hxgw.config import KeyLimits, Team
from hxgw.keys.book import ConfigSays, StoredKeys
from hxgw.keys.store import CLEARED, KeyStore, KeyStoreError
from hxgw.keys.stored_key import MIGRATIONS
from hxgw.keys.team_store import TeamStore
from hxgw.store import Database
from hxgw.store.migrate import migrate

NO_CONFIG = ConfigSays(frozenset())


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def test_a_team_is_made_changed_and_read_back(database: Database):
    teams = TeamStore(KeyStore(database))
    with teams.keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 100, "budget": 5.0})
        team = teams.update(connection, "search", {"rpm": CLEARED, "budget_period": "7d"})
    assert team.team() == Team(name="search", limits=KeyLimits(budget=5.0, budget_period_s=7 * 86_400))


def test_a_team_name_is_taken_once(database: Database):
    teams = TeamStore(KeyStore(database))
    with teams.keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 1})
        with pytest.raises(KeyStoreError, match="a team named 'search' exists"):
            teams.create(connection, "search", {"rpm": 2})


def test_a_team_with_keys_is_not_deleted_one_without_is(database: Database):
    keys = KeyStore(database)
    teams = TeamStore(keys)
    with keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 1})
        keys.create(connection, "app", {"team": "search"})
        with pytest.raises(KeyStoreError, match=r"has keys \(app\)"):
            teams.delete(connection, "search")
        keys.update(connection, "app", {"team": CLEARED})
        teams.delete(connection, "search")
        assert teams.all(connection) == []


def test_a_misspelt_team_names_the_one_meant(database: Database):
    teams = TeamStore(KeyStore(database))
    with teams.keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 1})
        with pytest.raises(KeyStoreError, match="did you mean 'search'"):
            teams.update(connection, "serch", {"rpm": 2})


def test_a_stored_key_in_a_stored_team_is_held_to_its_limits(database: Database, book: StoredKeys):
    keys = KeyStore(database)
    with keys.connect() as connection:
        TeamStore(keys).create(connection, "search", {"rpm": 100})
        secret = keys.create(connection, "app", {"team": "search"})
    book.refresh(NO_CONFIG)
    assert book.by_digest[_digest(secret)].team == Team(name="search", limits=KeyLimits(rpm=100))


def test_a_team_changed_is_read_again_though_no_key_changed(database: Database, book: StoredKeys):
    keys = KeyStore(database)
    teams = TeamStore(keys)
    with keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 100})
        secret = keys.create(connection, "app", {"team": "search"})
    book.refresh(NO_CONFIG)
    with keys.connect() as connection:
        teams.update(connection, "search", {"rpm": 7})
    assert book.refresh(NO_CONFIG)
    assert book.by_digest[_digest(secret)].team == Team(name="search", limits=KeyLimits(rpm=7))


def test_the_keys_file_s_team_wins_over_a_stored_team_of_its_name(
    database: Database, book: StoredKeys
):
    keys = KeyStore(database)
    with keys.connect() as connection:
        TeamStore(keys).create(connection, "search", {"rpm": 100})
        secret = keys.create(connection, "app", {"team": "search"})
    in_file = Team(name="search", limits=KeyLimits(budget=1.0))
    book.refresh(ConfigSays(frozenset(), None, (in_file,)))
    assert book.by_digest[_digest(secret)].team == in_file


def test_a_team_that_limits_nothing_holds_its_keys_to_nothing(database: Database, book: StoredKeys):
    keys = KeyStore(database)
    with keys.connect() as connection:
        TeamStore(keys).create(connection, "later", {})
        secret = keys.create(connection, "app", {"team": "later"})
    book.refresh(NO_CONFIG)
    assert book.by_digest[_digest(secret)].team is None


def test_a_team_whose_keys_are_all_revoked_may_be_deleted(database: Database):
    keys = KeyStore(database)
    teams = TeamStore(keys)
    with keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 1})
        keys.create(connection, "app", {"team": "search"})
        keys.revoke(connection, "app")
        assert teams.members(connection, "search") == []
        teams.delete(connection, "search")
        assert teams.all(connection) == []


def test_a_team_update_that_changes_nothing_is_refused(database: Database):
    teams = TeamStore(KeyStore(database))
    with teams.keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 1})
        with pytest.raises(KeyStoreError, match="nothing to change"):
            teams.update(connection, "search", {"rpm": None, "budget": None})


def test_a_team_changed_by_a_clock_behind_the_others_is_still_seen(
    database: Database, book: StoredKeys, monkeypatch: pytest.MonkeyPatch
):
    keys = KeyStore(database)
    teams = TeamStore(keys)
    with keys.connect() as connection:
        teams.create(connection, "search", {"rpm": 100})
        secret = keys.create(connection, "app", {"team": "search"})  # the newest change
    assert book.refresh(NO_CONFIG)
    behind = time.time() - 5  # another host's `hxgw teams`, its clock 5 s slow
    monkeypatch.setattr(time, "time", lambda: behind)
    with keys.connect() as connection:
        teams.update(connection, "search", {"rpm": 7})
    monkeypatch.undo()
    assert book.refresh(NO_CONFIG)
    assert book.by_digest[_digest(secret)].team == Team(name="search", limits=KeyLimits(rpm=7))


def test_a_stored_team_a_keys_file_team_hides_is_warned_of_once(
    database: Database, book: StoredKeys
):
    keys = KeyStore(database)
    with keys.connect() as connection:
        TeamStore(keys).create(connection, "search", {"rpm": 100})
        keys.create(connection, "app", {"team": "search"})
    in_file = Team(name="search", limits=KeyLimits(budget=1.0))
    with capture_logs() as logs:
        book.refresh(ConfigSays(frozenset(), None, (in_file,)))
        book.refresh(ConfigSays(frozenset({"other"}), None, (in_file,)))  # read again
    assert [(log["event"], log["team"]) for log in logs] == [
        ("a stored team has a keys-file team's name; its keys are held to the file's", "search")]



def test_a_stored_key_whose_team_a_reload_took_away_is_held_to_its_own_limits_and_said(
    database: Database, book: StoredKeys
):
    keys = KeyStore(database)
    with keys.connect() as connection:
        secret = keys.create(connection, "app", {"team": "search"})
    book.refresh(ConfigSays(frozenset(), None, (Team(name="search", limits=KeyLimits(rpm=5)),)))
    with capture_logs() as logs:
        book.refresh(NO_CONFIG)
    assert book.by_digest[_digest(secret)].team is None
    assert [(e["key"], e["team"]) for e in logs if "team" in e] == [("app", "search")]


def test_a_stored_key_in_a_team_with_groups_reaches_those_it_and_its_team_name(
    database: Database, book: StoredKeys
):
    keys = KeyStore(database)
    with keys.connect() as connection:
        TeamStore(keys).create(connection, "search", {"groups": ["chat", "solo"]})
        secret = keys.create(connection, "app", {"team": "search", "groups": ["solo", "emb"]})
    book.refresh(NO_CONFIG)
    key = book.by_digest[_digest(secret)]
    assert key.team == Team(name="search", limits=KeyLimits(), groups=frozenset({"chat", "solo"}))
    assert key.reach == frozenset({"solo"})


def test_a_team_an_older_gateway_made_keeps_its_keys_to_no_group(database: Database):
    with database.connect() as connection:
        migrate(connection, MIGRATIONS, upto=4)
        with connection.transaction():  # as a gateway that knew only v4 wrote it
            connection.execute(
                "INSERT INTO client_teams (name, rpm, budget_period, created, updated)"
                " VALUES ('old', 5, '1d', 1.0, 1.0)")
    teams = TeamStore(KeyStore(database))
    with teams.keys.connect() as connection:
        (team,) = teams.all(connection)
        changed = teams.update(connection, "old", {"groups": ["chat"]})
    assert team.team() == Team(name="old", limits=KeyLimits(rpm=5))
    assert changed.team() == Team(name="old", limits=KeyLimits(rpm=5), groups=frozenset({"chat"}))
