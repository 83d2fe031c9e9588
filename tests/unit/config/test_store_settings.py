"""gateway.yaml's `store` section and the environment that overrides it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hxgw.config import StoreSettings, load_store_settings
from hxgw.errors import ConfigError


def _write(directory: Path, store: object) -> Path:
    (directory / "gateway.yaml").write_text(yaml.safe_dump({"store": store}))
    return directory


def test_without_gateway_yaml_the_state_is_sqlite_under_var_lib_hxgw(tmp_path: Path):
    assert load_store_settings(tmp_path, {}) == StoreSettings()
    assert StoreSettings().state_dir == Path("/var/lib/hxgw")


def test_the_config_key_names_the_state_directory(tmp_path: Path):
    _write(tmp_path, {"state_dir": "/srv/hxgw", "batch_interval": 0.5})
    settings = load_store_settings(tmp_path, {})
    assert (settings.state_dir, settings.batch_interval) == (Path("/srv/hxgw"), 0.5)


def test_hx_state_dir_wins_over_the_config_key(tmp_path: Path):
    _write(tmp_path, {"state_dir": "/srv/hxgw"})
    assert load_store_settings(tmp_path, {"HX_STATE_DIR": "/tmp/x"}).state_dir == Path("/tmp/x")


def test_database_url_selects_postgres_and_is_never_shown(tmp_path: Path):
    url = "postgresql://hxgw:secret@db/hxgw"
    settings = load_store_settings(tmp_path, {"DATABASE_URL": url})
    assert settings.database_url == url
    assert "secret" not in repr(settings)


def test_a_database_url_of_another_kind_is_refused_without_its_value(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load_store_settings(tmp_path, {"DATABASE_URL": "mysql://u:secret@db/x"})
    assert str(caught.value) == (
        "environment: DATABASE_URL: must start with postgresql:// or postgres://"
    )


def test_a_database_url_libpq_cannot_read_is_refused_without_its_value(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load_store_settings(tmp_path, {"DATABASE_URL": "postgresql://u:secret@db:54x/x"})
    assert str(caught.value).startswith(
        "environment: DATABASE_URL: cannot be read as a PostgreSQL URL")
    assert "secret" not in str(caught.value)


def test_a_password_libpq_reads_whole_is_shown_nowhere_and_breaks_nothing(tmp_path: Path):
    from hxgw.store.postgres import PostgresDatabase

    url = "postgresql://hxgw:p4ss[word@127.0.0.1:5433/hxgw"  # urlsplit: "Invalid IPv6 URL"
    assert load_store_settings(tmp_path, {"DATABASE_URL": url}).database_url == url
    assert PostgresDatabase(url).where == "PostgreSQL postgresql://hxgw@127.0.0.1:5433/hxgw"


def test_a_redis_url_that_cannot_be_split_is_refused_without_its_value(tmp_path: Path):
    from hxgw.config import load_config
    from tests.fixtures import write_config

    directory = write_config(tmp_path, "http://127.0.0.1:4000")
    with pytest.raises(ConfigError) as caught:
        load_config(directory, {"MASTER_KEY": "k", "REDIS_URL": "redis://a:se[cret@h:1/0"})
    assert "REDIS_URL: must be a Redis URL" in str(caught.value)
    assert "se[cret" not in str(caught.value)


def test_a_relative_state_dir_and_an_unknown_key_are_named(tmp_path: Path):
    _write(tmp_path, {"state_dir": "state", "spool_bytes": 1})
    with pytest.raises(ConfigError) as caught:
        load_store_settings(tmp_path, {})
    problems = str(caught.value).splitlines()
    assert "gateway.yaml: store.state_dir: must be an absolute path, got 'state'" in problems
    assert any(p.startswith("gateway.yaml: store.spool_bytes: unknown key") for p in problems)


def test_the_gateway_config_reads_the_same_settings(tmp_path: Path):
    from hxgw.config import load_config
    from tests.fixtures import write_config

    directory = write_config(tmp_path, "http://127.0.0.1:4000",
                             gateway={"store": {"state_dir": "/srv/hxgw", "batch_rows": 50}})
    env = {"MASTER_KEY": "k", "DATABASE_URL": "postgres://db/x"}
    assert load_config(directory, env).store == load_store_settings(directory, env)
