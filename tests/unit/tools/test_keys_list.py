"""`hxgw keys list`'s rows: stored keys and the keys file's, side by side."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from hxgw.config import Config, KeyLimits, load_config
from hxgw.keys.stored_key import StoredKey
from hxgw.tools.keys_list import listed, table
from tests.fixtures import new_key, write_config


def _stored(name: str) -> StoredKey:
    return StoredKey(name=name, digest="00" * 32, previous_digest=None, previous_until=None,
                     groups=None, rpm=None, tpm=None, max_parallel=None, budget=None,
                     budget_period="1d", expires=None, revoked=None, created=0.0, updated=0.0)


def _with_keys_file(tmp_path: Path, *entries: dict[str, Any]) -> Config:
    config_dir = write_config(tmp_path, "http://127.0.0.1:1",
                              gateway={"auth": {"keys_file": "keys.yaml"}})
    keys = [{"key": new_key(), **entry} for entry in entries]
    (config_dir / "keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
    return load_config(config_dir, {}, serving=False)


def test_a_stored_key_named_like_a_keys_file_key_is_shown_hidden_by_it(tmp_path: Path):
    rows = listed([_stored("app")], _with_keys_file(tmp_path, {"name": "app"}), None)
    assert [(r.name, r.source, r.state) for r in rows] == [
        ("app", "store", "hidden"), ("app", "keys file", "active")]
    assert "hidden by the keys file" in table(rows).splitlines()[1]


def test_a_revoked_stored_key_named_like_a_keys_file_key_is_shown_revoked(tmp_path: Path):
    # As the gateway tells its holder: a revocation is final, a keys-file key may go.
    revoked = replace(_stored("app"), revoked=time.time() - 60)
    rows = listed([revoked], _with_keys_file(tmp_path, {"name": "app"}), None)
    assert [(r.source, r.state) for r in rows] == [("store", "revoked"), ("keys file", "active")]


def test_a_rotating_key_s_state_is_one_word_and_the_table_says_until_when(tmp_path: Path):
    until = time.time() + 3600
    (row,) = listed([replace(_stored("app"), previous_until=until)], None, None)
    assert row.state == "rotating" and row.public()["state"] == "rotating"
    shown = time.strftime("%Y-%m-%d %H:%M", time.gmtime(until))
    assert f"rotating (old until {shown})" in table([row])


def test_a_keys_file_key_with_a_budget_of_nothing_shows_it_and_its_period(tmp_path: Path):
    config = _with_keys_file(tmp_path, {"name": "frozen", "budget": 0, "budget_period": "7d"})
    (row,) = listed([], config, None)
    assert (row.budget, row.budget_period, row.spent) == (0.0, "7d", 0.0)
    assert "0.00/7d" in table([row])


def test_a_key_whose_last_request_overshot_its_budget_has_nothing_left_not_less(
    tmp_path: Path,
):
    # A budget is checked before a request, which may then cost more than was left.
    config = _with_keys_file(tmp_path, {"name": "app", "budget": 1, "budget_period": "1d"})
    (row,) = listed([], config, None)
    head, line = table([replace(row, spent=1.25)]).splitlines()
    at = head.index("SPENT")
    assert line[at:].split()[:2] == ["1.25", "0.00"]  # spent, and left


def test_each_end_user_s_limits_are_said_in_one_cell_and_a_dash_for_none(tmp_path: Path):
    config = _with_keys_file(
        tmp_path, {"name": "app", "per_user": {"rpm": 20, "max_parallel": 2, "budget": 1}},
        {"name": "plain"})
    rows = listed([], config, None)
    lines = table(rows).splitlines()
    column = lines[0].index("EACH END USER")
    assert [line[column:].rstrip() for line in lines[1:]] == [
        "rpm 20, parallel 2, budget 1.00/1d", "-"]


def _with_default(tmp_path: Path, *entries: dict[str, Any]) -> Config:
    config_dir = write_config(tmp_path, "http://127.0.0.1:1", gateway={
        "auth": {"keys_file": "keys.yaml", "per_user": {"rpm": 20}}})
    keys = [{"key": new_key(), **entry} for entry in entries]
    (config_dir / "keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
    return load_config(config_dir, {}, serving=False)


def test_keys_whose_end_users_get_the_config_s_default_say_so(tmp_path: Path):
    config = _with_default(tmp_path, {"name": "plain"}, {"name": "own", "per_user": {"rpm": 20}})
    own_stored = replace(_stored("mine"), user_rpm=5)
    rows = listed([_stored("made"), own_stored], config, None)
    said = {row.name: (row.per_user, row.per_user_default) for row in rows}
    assert said == {"made": (KeyLimits(rpm=20), True), "mine": (KeyLimits(rpm=5), False),
                    "plain": (KeyLimits(rpm=20), True), "own": (KeyLimits(rpm=20), False)}
    lines = table(rows).splitlines()
    column = lines[0].index("EACH END USER")
    assert [line[column:].rstrip() for line in lines[1:]] == [
        "rpm 20 (default)", "rpm 5", "rpm 20 (default)", "rpm 20"]
    assert rows[0].public()["per_user_default"] is True


def test_a_keys_file_key_s_team_is_listed(tmp_path: Path):
    config_dir = write_config(tmp_path, "http://127.0.0.1:1",
                              gateway={"auth": {"keys_file": "keys.yaml"}})
    (config_dir / "keys.yaml").write_text(yaml.safe_dump({
        "teams": [{"name": "search", "rpm": 100}],
        "keys": [{"name": "a", "key": new_key(), "team": "search"}]}))
    rows = listed([_stored("made")], load_config(config_dir, {}, serving=False), None)
    assert [(row.name, row.team) for row in rows] == [("made", None), ("a", "search")]
    lines = table(rows).splitlines()
    column = lines[0].index("TEAM")
    assert [line[column:].split()[0] for line in lines[1:]] == ["-", "search"]
    assert rows[1].public()["team"] == "search"
