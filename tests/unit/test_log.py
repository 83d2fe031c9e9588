"""Log lines: one event per line, journald priorities, logfmt escaping."""

from __future__ import annotations

import io
import json
import os

import pytest

from hxgw.log import Renderer, on_journal


def test_logfmt_puts_the_event_first_and_skips_empty_values():
    line = Renderer("kv", journal=False)(None, "info", {
        "event": "POST /v1/chat/completions", "level": "info", "status": 200, "model": None,
        "timestamp": "T"})
    assert line == "T info POST /v1/chat/completions status=200"


def test_values_with_newlines_stay_on_one_line():
    line = Renderer("kv", journal=False)(None, "error", {"event": "x\ny", "detail": 'a "b"\nc'})
    assert "\n" not in line
    assert line == 'error "x\\ny" detail="a \\"b\\"\\nc"'


@pytest.mark.parametrize(("level", "prefix"), [
    ("debug", "<7>"), ("info", "<6>"), ("warning", "<4>"), ("error", "<3>")])
def test_journal_lines_carry_the_syslog_priority(level: str, prefix: str):
    line = Renderer("kv", journal=True)(None, level, {"event": "e", "timestamp": "T"})
    assert line == f"{prefix}{level} e"


def test_json_lines_are_one_object():
    line = Renderer("json", journal=False)(None, "info", {"event": "e", "n": 1, "x": None})
    assert json.loads(line) == {"event": "e", "n": 1, "level": "info"}


def test_the_journal_stream_is_recognised_by_device_and_inode(tmp_path, monkeypatch):
    with open(tmp_path / "f", "w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert on_journal(stream)
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")
        assert not on_journal(stream)
    assert not on_journal(io.StringIO())


def test_list_values_read_as_one_joined_value():
    line = Renderer("kv", journal=False)(None, "error", {"event": "e", "problems": ["a: x", "b"]})
    assert line == 'error e problems="a: x; b"'
