"""Log lines: one event per line, journald priorities, logfmt escaping."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import time
from typing import Any

import pytest

from hxgw.observe.access import AccessLog, _milliseconds
from hxgw.observe.log import Renderer, on_journal


def test_logfmt_puts_the_event_first_and_skips_empty_values():
    line = Renderer("kv", journal=False)(None, "info", {
        "event": "POST /v1/chat/completions", "level": "info", "status": 200, "model": None,
        "timestamp": "T"})
    assert line == "T info POST /v1/chat/completions status=200"


def test_values_with_newlines_stay_on_one_line():
    line = Renderer("kv", journal=False)(None, "error", {"event": "x\ny", "detail": 'a "b"\nc'})
    assert "\n" not in line
    assert line == 'error "x\\ny" detail="a \\"b\\"\\nc"'


@pytest.mark.parametrize(("text", "written"), [
    ("a\x1b[2Jb", '"a\\x1b[2Jb"'), ("nul\x00", '"nul\\x00"'), ("del\x7f", '"del\\x7f"'),
    ("csi\x9b", '"csi\\x9b"'), ("line\u2028sep", '"line\\u2028sep"'), ("tab\t", '"tab\\t"'),
])
def test_control_characters_are_written_escaped_never_raw(text: str, written: str):
    render = Renderer("kv", journal=False)
    assert render.logfmt("info", "e", None, {"path": text}) == f"info e path={written}"
    assert render.logfmt("info", text, None, {}) == f"info {written}"


def test_a_word_seen_before_is_quoted_the_same_way_the_second_time():
    render = Renderer("kv", journal=False)
    fields = {"group": "chat", "detail": "two words", "ms": 1.5, "ok": True}
    first = render.logfmt("info", "e", None, fields)
    assert first == render.logfmt("info", "e", None, fields)
    assert first == 'info e group=chat detail="two words" ms=1.5 ok=True'


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


FAILED_OVER = {
    "status": 200, "model": "m-beta", "group": "chat", "key": "team a", "latency": 0.0125,
    "ttfb": 0.00325, "size": 9, "tokens": (12, 7), "failovers": 1, "outcome": "ok",
}
UNANSWERED = {
    "status": 499, "model": None, "group": None, "key": None, "latency": 0.0004,
    "ttfb": None, "size": 0, "failovers": 0, "outcome": "client_gone",
}


def _access_line(
    fmt: str, journal: bool, stamped: bool, fields: dict[str, Any] = FAILED_OVER
) -> str:
    stream = io.StringIO()
    access = AccessLog(Renderer(fmt, journal=journal), stream, stamped=stamped)
    access.write("POST", "/v1/chat/completions", "r1", **fields)
    return stream.getvalue()


def test_an_access_line_reads_like_any_other_line_with_its_request_id_last():
    line = _access_line("kv", journal=False, stamped=True)
    stamp, rest = line.split(" ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert rest == (
        'info POST /v1/chat/completions status=200 model=m-beta group=chat key="team a" '
        "latency_ms=12.50 ttfb_ms=3.25 bytes=9 prompt_tokens=12 completion_tokens=7 "
        "failovers=1 outcome=ok request_id=r1\n"
    )


def test_an_access_line_leaves_out_what_the_request_never_reached():
    line = _access_line("kv", journal=False, stamped=False, fields=UNANSWERED)
    assert line == (
        "info POST /v1/chat/completions status=499 latency_ms=0.40 bytes=0 failovers=0 "
        "outcome=client_gone request_id=r1\n"
    )


def _as_written(name: str, value: Any) -> list[tuple[str, Any]]:
    """An argument of AccessLog.write as the line names and shows it."""
    if name in ("latency", "ttfb"):  # seconds in, milliseconds to two places out
        return [(f"{name}_ms", None if value is None else f"{value * 1000:.2f}")]
    if name == "tokens":
        return [("prompt_tokens", value[0]), ("completion_tokens", value[1])]
    return [("bytes" if name == "size" else name, value)]


def test_an_access_line_reads_the_same_as_a_line_rendered_by_the_generic_renderer():
    renderer = Renderer("kv", journal=False)
    for fields in (FAILED_OVER, UNANSWERED):
        in_line_order = dict(pair for name, value in fields.items()
                             for pair in _as_written(name, value))
        generic = renderer.logfmt(
            "info", "POST /v1/chat/completions", None, {**in_line_order, "request_id": "r1"}
        )
        assert _access_line("kv", journal=False, stamped=False, fields=fields) == generic + "\n"


def test_an_access_line_on_the_journal_has_a_priority_and_no_timestamp():
    line = _access_line("kv", journal=True, stamped=False, fields=UNANSWERED)
    assert line.startswith("<6>info POST /v1/chat/completions status=499 ")


def test_an_access_line_in_json_is_one_object_without_the_missing_values():
    line = _access_line("json", journal=False, stamped=False, fields=UNANSWERED)
    assert json.loads(line) == {
        "event": "POST /v1/chat/completions", "status": 499, "latency_ms": 0.4, "bytes": 0,
        "failovers": 0, "outcome": "client_gone", "request_id": "r1", "level": "info",
    }


async def test_access_lines_of_one_loop_turn_are_written_together_in_order():
    stream = io.StringIO()
    access = AccessLog(Renderer("kv", journal=True), stream, stamped=False)
    for n in range(3):
        access.write("GET", f"/{n}", f"r{n}", **UNANSWERED)
    assert stream.getvalue() == ""  # not yet: at the end of this turn
    await asyncio.sleep(0)
    lines = stream.getvalue().splitlines()
    assert [line.split(" ")[2] for line in lines] == ["/0", "/1", "/2"]
    assert [line.rpartition("=")[2] for line in lines] == ["r0", "r1", "r2"]


def test_an_access_log_below_its_level_writes_nothing():
    stream = io.StringIO()
    AccessLog(Renderer("kv", journal=False), stream, stamped=True, level="error").write(
        "GET", "/", "r", **{**UNANSWERED, "status": 502})
    assert stream.getvalue() == ""


def _line(status: int, *, fmt: str = "kv", level: str = "info") -> str:
    stream = io.StringIO()
    access = AccessLog(Renderer(fmt, journal=True), stream, stamped=False, level=level)
    access.write("POST", "/v1/chat/completions", "r", **{**UNANSWERED, "status": status})
    return stream.getvalue()


def test_a_5xx_access_line_is_a_warning_to_the_journal():
    assert _line(502).startswith("<4>warning POST /v1/chat/completions status=502 ")


def test_a_5xx_access_line_in_json_is_a_warning_to_the_journal():
    line = _line(503, fmt="json")
    assert line.startswith("<4>{") and json.loads(line[3:])["level"] == "warning"


def test_a_429_access_line_stays_at_info():
    assert _line(429).startswith("<6>info POST /v1/chat/completions status=429 ")


def test_at_level_warning_only_the_5xx_access_lines_are_written():
    assert _line(200, level="warning") == ""
    assert _line(429, level="warning") == ""
    assert _line(500, level="warning").startswith("<4>warning ")


@pytest.mark.parametrize("seconds", [0.0, 0.0000049, 0.0004, 0.012504, 0.99999, 1.5, 3600.0])
def test_a_duration_is_written_in_milliseconds_with_two_decimals_like_the_float_format(
    seconds: float,
):
    assert _milliseconds(seconds) == f"{seconds * 1000:.2f}"


def test_an_access_line_s_timestamp_keeps_the_leading_zeros_of_its_microseconds(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.000041)
    line = _access_line("kv", journal=False, stamped=True)
    assert line.startswith("2023-11-14T22:13:20.000041Z info POST ")
