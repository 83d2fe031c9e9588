"""`auth.per_user`: what each end user of a key gets where the key gives its end users
no limits of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hxgw.config import load_config
from hxgw.config.schema import MASTER_KEY_NAME, KeyLimits
from hxgw.errors import ConfigError
from tests.fixtures import write_config

ENV = {"MASTER_KEY": "sk-unit-test-key"}


def _config(tmp_path: Path, per_user: object, *keys: dict[str, object]) -> Path:
    write_config(tmp_path, "http://127.0.0.1:1",
                 gateway={"auth": {"keys_file": "keys.yaml", "per_user": per_user}})
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": list(keys)}))
    return tmp_path


def test_the_default_is_read_into_the_config(tmp_path: Path):
    config = load_config(_config(tmp_path, {"rpm": 20, "budget": 1, "budget_period": "7d"}), ENV)
    assert config.per_user == KeyLimits(rpm=20, budget=1.0, budget_period_s=7 * 86_400)


def test_a_file_key_that_gives_its_end_users_nothing_gives_them_the_default(tmp_path: Path):
    config = load_config(
        _config(tmp_path, {"rpm": 20}, {"name": "app", "key": "sk-app-1", "rpm": 600}), ENV
    )
    (app,) = [key for key in config.keys if key.name == "app"]
    assert (app.limits, app.per_user) == (KeyLimits(rpm=600), KeyLimits(rpm=20))


def test_a_file_key_s_own_per_user_limits_replace_the_default_whole(tmp_path: Path):
    config = load_config(
        _config(tmp_path, {"rpm": 20, "budget": 1},
                {"name": "app", "key": "sk-app-1", "per_user": {"tpm": 900}}),
        ENV,
    )
    (app,) = [key for key in config.keys if key.name == "app"]
    assert app.per_user == KeyLimits(tpm=900)


def test_master_key_s_end_users_are_not_held_to_the_default(tmp_path: Path):
    config = load_config(_config(tmp_path, {"rpm": 20}), ENV)
    (master,) = [key for key in config.keys if key.name == MASTER_KEY_NAME]
    assert master.per_user is None


def test_without_a_default_a_key_s_end_users_have_no_limits(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": [
        {"name": "app", "key": "sk-app-1", "rpm": 5}]}))
    config = load_config(tmp_path, ENV)
    assert config.per_user is None
    assert all(key.per_user is None for key in config.keys)


@pytest.mark.parametrize(
    ("per_user", "said"),
    [
        ({}, "auth.per_user: sets no limit"),
        (None, "auth.per_user: sets no limit"),
        ({"budget_period": "30d"}, "auth.per_user: sets no limit"),
        ({"rpm": 0}, "auth.per_user.rpm: "),
        ({"rpm": 5, "name": "x"}, "auth.per_user.name: unknown key"),
        ("20", "auth.per_user: must be a mapping"),
    ],
)
def test_a_bad_default_is_reported_with_its_path(tmp_path: Path, per_user: object, said: str):
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, per_user), ENV)
    problems = str(caught.value).splitlines()
    assert len(problems) == 1 and said in problems[0], problems
