"""A worker's settings that only a restart changes are its supervisor's: pinned."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path

import pytest
import structlog

from hxgw.config import Config, load_config
from hxgw.config.warnings import log_restart_only_changes
from hxgw.lifecycle.pinned import PINNED_FILE, RestartOnly, pin, pinned
from hxgw.observe.workers import SHARED_DIR
from tests.fixtures import new_key, write_config

ENV = {"MASTER_KEY": new_key()}
LISTENING = "127.0.0.1:4010"


def _config(directory: Path, **gateway: object) -> Config:
    return load_config(write_config(directory, "http://127.0.0.1:1", gateway=gateway), ENV)


def _changed_in_every_restart_only_setting(tmp_path: Path) -> Config:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=hx",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o600)
    return _config(
        tmp_path / "new",
        listen={"host": "127.0.0.1", "port": 4010},
        tls={"cert": str(cert), "key": str(key)},
        limits={"client_idle_timeout": 7},
        limits_store={"url": "redis://127.0.0.1:1/0"},
        store={"batch_rows": 50},
        logging={"level": "warning", "format": "json"},
    )


def test_every_setting_only_a_restart_changes_is_pinned_but_the_idle_timeout(tmp_path: Path):
    # A body is held to a new idle timeout at once: only idle connections wait for it.
    started = _config(tmp_path / "old", listen={"host": "127.0.0.1", "port": 4010})
    files_now = _changed_in_every_restart_only_setting(tmp_path)
    assert log_restart_only_changes(started, files_now, LISTENING) == [
        "tls", "limits.client_idle_timeout", "limits_store", "store", "logging"]
    assert log_restart_only_changes(
        started, RestartOnly.of(started).apply(files_now), LISTENING) == [
        "limits.client_idle_timeout"]


def test_a_new_certificate_is_the_files_while_tls_stays_on(tmp_path: Path):
    on = _changed_in_every_restart_only_setting(tmp_path / "a")
    renewed = _changed_in_every_restart_only_setting(tmp_path / "b")
    assert RestartOnly.of(on).apply(renewed).tls == renewed.tls != on.tls


def test_a_pin_keeps_the_rest_of_the_config_as_the_files_say(tmp_path: Path):
    started = _config(tmp_path / "old")
    files_now = _config(tmp_path / "new", timeouts={"connect": 3, "first_byte": 5})
    assert RestartOnly.of(started).apply(files_now).timeouts == files_now.timeouts


def test_a_worker_reads_what_its_supervisor_pinned_and_a_lone_process_nothing(tmp_path: Path):
    started = _config(tmp_path / "old")
    pin(started, tmp_path)
    assert pinned({SHARED_DIR: str(tmp_path)}) == RestartOnly.of(started)
    assert pinned({}) is None


@pytest.mark.parametrize("written", [
    b"not a pickle at all",
    pickle.dumps(("RestartOnly: tls, idle, limits_store", None)),  # another layout
    pickle.dumps({"tls": None}),  # as a version before layouts wrote its own
], ids=["garbage", "another-layout", "no-layout"])
def test_a_pin_another_version_wrote_is_said_and_the_files_settings_run(
    tmp_path: Path, written: bytes
):
    # A slotted dataclass unpickles by position: another layout's values had landed in
    # the wrong fields, unsaid.
    (tmp_path / PINNED_FILE).write_bytes(written)
    with structlog.testing.capture_logs() as logs:
        assert pinned({SHARED_DIR: str(tmp_path)}) is None
    assert [e["log_level"] for e in logs] == ["error"]
