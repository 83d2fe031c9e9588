"""What a reload says it changed: names and places, never a secret."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from hxgw.config import KeyLimits, Team, load_config
from hxgw.config.changes import changes
from tests.fixtures import DEFAULT_ROUTING, new_key, write_config

KEYS = {"keys": [{"name": "app", "key": "sk-app-secret-123456"}]}


def _load(tmp_path: Path, name: str, **config: object):
    config_dir = write_config(tmp_path / name, "http://127.0.0.1:1", **config)  # type: ignore[arg-type]
    keys = config_dir / "keys.yaml"
    keys.write_text(yaml.safe_dump(KEYS if name == "old" else {"keys": [
        {"name": "app", "key": "sk-app-other-654321"}, {"name": "ci", "key": "sk-ci-12345678"}]}))
    keys.chmod(0o600)
    return load_config(config_dir, {"MASTER_KEY": "sk-master-1234567"})


def test_the_same_files_change_nothing(tmp_path: Path):
    config = _load(tmp_path, "old")
    found = changes(config, config)
    assert found.fields == {} and found.summary() == "nothing changed"


def test_settings_are_named_by_their_place_and_keys_by_name_only(tmp_path: Path):
    auth = {"keys_file": "keys.yaml"}
    old = _load(tmp_path, "old", gateway={"auth": auth})
    new = _load(tmp_path, "new", gateway={"auth": auth, "cors": {"allow_origins": []},
                                          "timeouts": {"connect": 1, "total": 30}})
    found = changes(old, new)
    assert found.fields["settings_changed"] == "timeouts,cors"
    assert found.fields["keys_added"] == "ci" and found.fields["keys_changed"] == "app"
    assert found.summary() == "changed gateway.yaml, keys.yaml"
    assert "secret" not in repr(found) and "other" not in repr(found)


def test_an_upstream_given_another_key_is_named_without_its_key(tmp_path: Path):
    master = new_key()
    old = load_config(write_config(tmp_path / "a", "http://127.0.0.1:1"),
                      {"MASTER_KEY": master, "HX_UPSTREAM_KEY": "sk-up-one-1234"})
    new = load_config(write_config(tmp_path / "b", "http://127.0.0.1:1"),
                      {"MASTER_KEY": master, "HX_UPSTREAM_KEY": "sk-up-two-1234"})
    assert changes(old, new).fields == {"upstreams_changed": "default"}


def test_health_and_circuit_breaker_settings_are_named_apart(tmp_path: Path):
    master = {"MASTER_KEY": new_key()}
    routing = DEFAULT_ROUTING["routing"]
    old = load_config(write_config(tmp_path / "a", "http://127.0.0.1:1"), master)
    breaker = {"routing": routing | {"circuit_breaker": {"error_rate": 0.25}}}
    health = {"routing": routing | {"health": {"stall_floor": 2}}}
    for new_routing, place in ((breaker, "routing.circuit_breaker"), (health, "routing.health")):
        directory = write_config(tmp_path / place, "http://127.0.0.1:1", routing=new_routing)
        found = changes(old, load_config(directory, master))
        assert found.fields == {"settings_changed": place}


def test_a_changed_default_for_end_users_is_a_change_of_auth(tmp_path: Path):
    master = {"MASTER_KEY": new_key()}
    old = load_config(write_config(tmp_path / "a", "http://127.0.0.1:1"), master)
    directory = write_config(tmp_path / "b", "http://127.0.0.1:1",
                             gateway={"auth": {"per_user": {"rpm": 20}}})
    assert changes(old, load_config(directory, master)).fields == {"settings_changed": "auth"}


def test_a_reload_that_changes_only_a_team_of_the_keys_file_names_it(tmp_path: Path):
    auth = {"auth": {"keys_file": "keys.yaml"}}
    old = _load(tmp_path, "old", gateway=auth)
    new = dataclasses.replace(old, teams=(Team(name="search", limits=KeyLimits(rpm=5)),))
    found = changes(old, new)
    assert found.fields == {"teams_added": "search"} and found.summary() == "changed keys.yaml"
