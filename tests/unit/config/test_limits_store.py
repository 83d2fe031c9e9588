"""gateway.yaml's limits_store section: where the per-key limits live."""

from __future__ import annotations

from pathlib import Path

import pytest

from hxgw.config import load_config
from hxgw.errors import ConfigError
from tests.fixtures import write_config

ENV = {"MASTER_KEY": "sk-unit-test-key"}


def _problems(directory: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(directory, ENV if env is None else env)
    return str(caught.value).splitlines()


def test_without_the_section_limits_live_in_memory_and_fail_closed(tmp_path: Path) -> None:
    store = load_config(write_config(tmp_path, "http://127.0.0.1:1"), ENV).limits_store
    assert (store.url, store.fail_open) == (None, False)


def test_the_section_names_redis_and_the_failure_mode(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={
        "limits_store": {"url": "redis://10.0.0.5:6379/2", "fail_open": True}})
    store = load_config(tmp_path, ENV).limits_store
    assert (store.url, store.fail_open) == ("redis://10.0.0.5:6379/2", True)


def test_redis_url_in_the_environment_overrides_the_file(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={
        "limits_store": {"url": "redis://10.0.0.5:6379/2"}})
    env = ENV | {"REDIS_URL": "rediss://:pw@cache.internal:6380/0"}
    assert load_config(tmp_path, env).limits_store.url == "rediss://:pw@cache.internal:6380/0"


def test_a_url_that_is_not_redis_is_one_problem_without_its_password(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={
        "limits_store": {"url": "http://user:secret@10.0.0.5:6379"}})
    (problem,) = _problems(tmp_path)
    assert problem.startswith("gateway.yaml: limits_store.url: must be a Redis URL")
    assert "secret" not in problem and "user:***@10.0.0.5" in problem


@pytest.mark.parametrize("url", [
    "redis://:Zx9/q#Kp@127.0.0.1:6379/0",  # an unencoded /, # in the password
    "redis://app:Zx9?q@127.0.0.1:6379/x",
    "unix:///tmp/r.sock?db=one&password=TopSecret1",
    "redis://127.0.0.1:6379/x?password=TopSecret1",
])
def test_a_bad_redis_url_never_shows_its_password(tmp_path: Path, url: str) -> None:
    write_config(tmp_path, "http://127.0.0.1:1")
    (problem,) = _problems(tmp_path, ENV | {"REDIS_URL": url})
    assert problem.startswith("environment: REDIS_URL: must be a Redis URL")
    assert not any(secret in problem for secret in ("Zx9", "TopSecret1", "#Kp", "q@"))


def test_a_bad_redis_url_in_the_environment_is_named(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:1")
    (problem,) = _problems(tmp_path, ENV | {"REDIS_URL": "redis://host:port"})
    assert problem.startswith("environment: REDIS_URL: must be a Redis URL")


def test_fail_open_must_be_a_boolean(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"limits_store": {"fail_open": "yes"}})
    assert _problems(tmp_path) == [
        "gateway.yaml: limits_store.fail_open: must be true or false, got a string"]


def test_an_unknown_key_in_the_section_is_named(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"limits_store": {"uri": "redis://x"}})
    assert _problems(tmp_path) == [
        "gateway.yaml: limits_store.uri: unknown key (known keys: fail_open, timeout, url)"]


def test_the_url_is_not_in_the_config_repr(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:1")
    config = load_config(tmp_path, ENV | {"REDIS_URL": "redis://:hunter2@10.0.0.5:6379/0"})
    assert "hunter2" not in repr(config.limits_store)


@pytest.mark.parametrize("url", ["redis://10.0.0.5:6379/abc", "redis://10.0.0.5:6379?db=x",
                                 "unix:///run/redis.sock?db=one"])
def test_a_redis_url_whose_database_is_not_a_number_is_refused(tmp_path: Path, url: str) -> None:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"limits_store": {"url": url}})
    (problem,) = _problems(tmp_path)
    assert "limits_store.url: must be a Redis URL" in problem


def test_the_timeout_is_half_a_second_unless_given(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, "http://127.0.0.1:1"), ENV).limits_store.timeout == 0.5
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"limits_store": {"timeout": 2}})
    assert load_config(tmp_path, ENV).limits_store.timeout == 2


@pytest.mark.parametrize("timeout", [0, -1, 11])
def test_a_timeout_outside_zero_to_ten_seconds_is_refused(tmp_path: Path, timeout: float) -> None:
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"limits_store": {"timeout": timeout}})
    (problem,) = _problems(tmp_path)
    assert problem.startswith("gateway.yaml: limits_store.timeout: ")
