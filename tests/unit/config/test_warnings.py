"""What a loaded config deserves to be told at start: the secrets' file modes, once,
with the fix, and the models without a price."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from hxgw.config import Config, load_config
from hxgw.config.warnings import (
    guessable_keys,
    log_restart_only_changes,
    log_supervisor_restart_changes,
    warn_at_start,
    warn_if_world_readable,
)
from tests.fixtures import DEFAULT_MODELS, new_key, write_config


def _warnings(config_dir: Path) -> list[dict[str, object]]:
    config = load_config(config_dir, {"MASTER_KEY": new_key()})
    with structlog.testing.capture_logs() as logs:
        warn_if_world_readable(config)
    return [entry for entry in logs if entry["log_level"] == "warning"]


def test_yaml_files_readable_by_everyone_get_no_warning(tmp_path: Path):
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1")
    for path in config_dir.iterdir():
        path.chmod(0o644)
    assert _warnings(config_dir) == []


def test_an_env_file_readable_by_everyone_gets_one_warning_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env_file = tmp_path / "hx.env"
    env_file.write_text("MASTER_KEY=x\n")
    env_file.chmod(0o644)
    monkeypatch.setenv("HX_ENV_FILE", str(env_file))
    warnings = _warnings(write_config(tmp_path / "conf", "http://127.0.0.1:1"))
    assert len(warnings) == 1
    assert warnings[0]["path"] == str(env_file)
    assert warnings[0]["fix"] == f"chmod o-rwx {env_file}"


def test_an_env_file_only_its_group_reads_gets_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env_file = tmp_path / "hx.env"
    env_file.write_text("MASTER_KEY=x\n")
    env_file.chmod(0o640)
    monkeypatch.setenv("HX_ENV_FILE", str(env_file))
    assert _warnings(write_config(tmp_path / "conf", "http://127.0.0.1:1")) == []


def test_a_keys_file_readable_by_everyone_gets_a_warning(tmp_path: Path):
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1",
                              gateway={"auth": {"keys_file": "keys.yaml"}})
    keys = config_dir / "keys.yaml"
    keys.write_text(f"keys:\n  - name: app\n    key: {new_key()}\n")
    keys.chmod(0o644)
    assert [w["path"] for w in _warnings(config_dir)] == [str(keys)]


def test_models_without_a_price_are_named_once_at_start(tmp_path: Path):
    models = [dict(DEFAULT_MODELS[0], price={"input_per_mtok": 1, "output_per_mtok": 2}),
              *DEFAULT_MODELS[1:]]
    config = load_config(write_config(tmp_path / "conf", "http://127.0.0.1:1", models=models),
                         {"MASTER_KEY": new_key()})
    with structlog.testing.capture_logs() as logs:
        warn_at_start(config)
    notes = [e for e in logs if e["event"] == "models without a price cost nothing in budgets"]
    assert len(notes) == 1 and notes[0]["models"] == "beta,gamma,embed"


def _config_on(tmp_path: Path, port: int) -> Config:
    directory = write_config(tmp_path / str(port), "http://127.0.0.1:1",
                             gateway={"listen": {"host": "127.0.0.1", "port": port}})
    return load_config(directory, {"MASTER_KEY": new_key()})


def test_a_listen_address_is_compared_with_the_one_in_use_not_the_last_config(tmp_path: Path):
    first, moved = _config_on(tmp_path, 4010), _config_on(tmp_path, 4011)
    with structlog.testing.capture_logs() as logs:
        log_restart_only_changes(first, moved, "127.0.0.1:4010")  # asks for 4011
        log_restart_only_changes(moved, first, "127.0.0.1:4010")  # back to where it is
        log_restart_only_changes(moved, moved, "127.0.0.1:4010")  # 4011 still waits
    said = [(e.get("listening"), e.get("configured")) for e in logs]
    # Before, the second said it moved from 4011 (it never had) and the third said nothing.
    assert said == [("127.0.0.1:4010", "127.0.0.1:4011"), ("127.0.0.1:4010", "127.0.0.1:4011")]


def test_with_workers_a_moved_address_and_their_number_are_the_supervisor_s_to_say(
    tmp_path: Path,
):
    started = _config_on(tmp_path, 4010)
    moved = load_config(write_config(tmp_path / "moved", "http://127.0.0.1:1", gateway={
        "listen": {"host": "127.0.0.1", "port": 4011}, "workers": 3}), {"MASTER_KEY": new_key()})
    with structlog.testing.capture_logs():
        assert log_supervisor_restart_changes(started, moved, 2) == ["listen", "workers"]
        assert log_supervisor_restart_changes(started, moved, None) == ["listen"]  # --workers
        assert log_supervisor_restart_changes(started, started, 2) == []


def _config_with(tmp_path: Path, name: str, **gateway: object) -> Config:
    directory = write_config(tmp_path / name, "http://127.0.0.1:1", gateway=gateway)
    return load_config(directory, {"MASTER_KEY": new_key()})


def test_a_restart_only_setting_is_warned_of_on_every_reload_until_the_restart(tmp_path: Path):
    started = _config_with(tmp_path, "a")
    quiet = _config_with(tmp_path, "b", logging={"level": "debug"})
    with structlog.testing.capture_logs() as logs:
        log_restart_only_changes(started, quiet, "0.0.0.0:4010")
        log_restart_only_changes(started, quiet, "0.0.0.0:4010")  # compared with the start
        log_restart_only_changes(started, started, "0.0.0.0:4010")  # put back: nothing
    assert [e["event"] for e in logs] == [
        "logging.level or logging.format changed; it takes effect on restart"] * 2
    assert (logs[0]["in_use"], logs[0]["configured"]) == ("level:info,format:kv",
                                                          "level:debug,format:kv")


def test_the_store_settings_wait_for_a_restart_and_the_access_log_does_not(tmp_path: Path):
    started = _config_with(tmp_path, "a")
    changed = _config_with(tmp_path, "b", store={"ledger": False},
                           logging={"access_log": False})
    with structlog.testing.capture_logs() as logs:
        log_restart_only_changes(started, changed, "0.0.0.0:4010")
    assert [e["event"] for e in logs] == ["store settings changed; they take effect on restart"]


def test_client_keys_short_enough_to_guess_are_named_at_start(tmp_path: Path):
    keys = tmp_path / "conf" / "keys.yaml"
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1",
                              gateway={"auth": {"keys_file": "keys.yaml"}})
    keys.write_text(f"keys:\n  - {{name: short, key: sk-1234}}\n"
                    f"  - {{name: long, key: {new_key()}}}\n")
    keys.chmod(0o640)
    config = load_config(config_dir, {"MASTER_KEY": "sk-test"})
    with structlog.testing.capture_logs() as logs:
        warn_at_start(config)
    (said,) = [e["event"] for e in logs if "can be guessed" in str(e["event"])]
    assert said.startswith("client keys shorter than 20 characters can be guessed: master, short;")


def test_long_client_keys_get_no_guessing_warning(tmp_path: Path):
    config = load_config(write_config(tmp_path / "conf", "http://127.0.0.1:1"),
                         {"MASTER_KEY": new_key()})
    with structlog.testing.capture_logs() as logs:
        warn_at_start(config)
    assert not [e for e in logs if "can be guessed" in str(e["event"])]


def test_a_reload_names_only_the_short_keys_it_brought(tmp_path: Path):
    keys = tmp_path / "conf" / "keys.yaml"
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1",
                              gateway={"auth": {"keys_file": "keys.yaml"}})
    keys.write_text("keys:\n  - {name: old, key: sk-old}\n")
    keys.chmod(0o640)
    before = load_config(config_dir, {"MASTER_KEY": new_key()})
    keys.write_text("keys:\n  - {name: old, key: sk-old}\n  - {name: new, key: sk-new}\n")
    after = load_config(config_dir, {"MASTER_KEY": new_key()})
    said = guessable_keys(after, before)
    assert said is not None and "can be guessed: new;" in said
