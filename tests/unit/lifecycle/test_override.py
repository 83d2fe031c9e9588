"""The command line's address against the one the files ask for, at a reload."""

from __future__ import annotations

from pathlib import Path

import structlog

from hxgw.config import Config, load_config
from hxgw.lifecycle.override import AddressAsked, Override
from tests.fixtures import new_key, write_config

ENV = {"MASTER_KEY": new_key()}


def _files(directory: Path, port: int) -> Config:
    gateway = {"listen": {"host": "127.0.0.1", "port": port}}
    return load_config(write_config(directory, "http://127.0.0.1:1", gateway=gateway), ENV)


def _said_on_reload(tmp_path: Path, override: Override, before: int, after: int) -> list[str]:
    address = AddressAsked(override, _files(tmp_path / "before", before).listen)
    with structlog.testing.capture_logs() as logs:
        address.reloaded(_files(tmp_path / "after", after))
    return [entry["event"] for entry in logs]


def test_a_port_moved_in_the_files_that_the_command_line_pins_is_said(tmp_path: Path):
    said = _said_on_reload(tmp_path, Override(port=4020), before=4010, after=4030)
    assert said == ["listen changed in gateway.yaml; --host/--port on the command line win"]


def test_a_port_moved_in_the_files_without_a_pin_is_left_to_the_restart_warning(tmp_path: Path):
    assert _said_on_reload(tmp_path, Override(), before=4010, after=4030) == []


def test_a_pinned_port_the_files_did_not_move_is_not_said_again(tmp_path: Path):
    assert _said_on_reload(tmp_path, Override(port=4020), before=4030, after=4030) == []


def test_the_files_moving_to_the_pinned_port_is_not_said(tmp_path: Path):
    assert _said_on_reload(tmp_path, Override(port=4020), before=4010, after=4020) == []
