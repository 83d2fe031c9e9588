"""The command line's address against the one the files ask for, at a reload."""

from __future__ import annotations

from pathlib import Path

import structlog

from hxgw.config import Config, load_config
from hxgw.lifecycle.override import ListenInFiles, Override
from tests.fixtures import new_key, write_config

ENV = {"MASTER_KEY": new_key()}
SAID = "listen changed in gateway.yaml; the command line's address wins"


def _files(directory: Path, address: str) -> Config:
    host, port = address.rsplit(":", 1)
    gateway = {"listen": {"host": host, "port": int(port)}}
    return load_config(write_config(directory, "http://127.0.0.1:1", gateway=gateway), ENV)


def _said_on_reload(
    tmp_path: Path, override: Override, before: str, after: str
) -> list[dict[str, object]]:
    listen = ListenInFiles(override, _files(tmp_path / "before", before).listen)
    with structlog.testing.capture_logs() as logs:
        listen.reread(_files(tmp_path / "after", after))
    return logs


def test_a_port_moved_in_the_files_that_the_command_line_pins_is_said(tmp_path: Path):
    (said,) = _said_on_reload(tmp_path, Override(port=4020), "127.0.0.1:4010", "127.0.0.1:4030")
    assert (said["event"], said["pinned_by"]) == (SAID, "--port")


def test_a_host_moved_in_the_files_that_the_command_line_pins_is_said(tmp_path: Path):
    (said,) = _said_on_reload(tmp_path, Override(host="::1"), "127.0.0.1:4010", "0.0.0.0:4010")
    assert (said["event"], said["pinned_by"]) == (SAID, "--host")


def test_a_host_moved_where_only_the_port_is_pinned_is_left_to_the_restart_warning(
    tmp_path: Path,
):
    assert _said_on_reload(tmp_path, Override(port=4020), "127.0.0.1:4010", "0.0.0.0:4010") == []


def test_a_port_moved_in_the_files_without_a_pin_is_left_to_the_restart_warning(tmp_path: Path):
    assert _said_on_reload(tmp_path, Override(), "127.0.0.1:4010", "127.0.0.1:4030") == []


def test_a_pinned_port_the_files_did_not_move_is_not_said_again(tmp_path: Path):
    assert _said_on_reload(tmp_path, Override(port=4020), "127.0.0.1:4030", "127.0.0.1:4030") == []
