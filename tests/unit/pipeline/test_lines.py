"""An event stream cut into blocks of whole lines: the unfinished line held until its
end comes, however small the reads."""

from __future__ import annotations

import pytest

from hxgw.pipeline.answer.lines import MAX_HELD_LINE, HeldLine, closer, open_closer, rest_of_end

LINE = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


def test_a_read_of_whole_lines_passes_whole():
    held = HeldLine()
    assert held.whole_lines(LINE) == LINE and not held


def test_an_unfinished_line_is_held_and_comes_with_the_read_that_ends_it():
    held = HeldLine()
    assert held.whole_lines(LINE + b"data: {") == LINE
    assert held
    assert held.whole_lines(b'"x"}\n\ndata: [') == b'data: {"x"}\n\n'
    assert held.whole_lines(b"DONE]\n\n") == b"data: [DONE]\n\n" and not held


def test_a_line_read_a_byte_at_a_time_comes_whole_at_its_end():
    held = HeldLine()
    blocks = [held.whole_lines(LINE[at:at + 1]) for at in range(len(LINE))]
    assert [block for block in blocks if block] == [LINE[:-1], b"\n"]


@pytest.mark.parametrize("end", [b"\r", b"\r\n", b"\n"])
def test_each_kind_of_line_end_ends_a_line(end: bytes):
    held = HeldLine()
    assert held.whole_lines(b"data: 1" + end + b"data") == b"data: 1" + end


def test_a_line_longer_than_any_is_passed_through_rather_than_held():
    held = HeldLine()
    assert held.whole_lines(b"x" * MAX_HELD_LINE) == b""
    assert held.whole_lines(b"yy") == b"x" * MAX_HELD_LINE + b"yy" and not held


def test_an_empty_read_holds_nothing():
    held = HeldLine()
    assert held.whole_lines(b"") == b"" and not held


@pytest.mark.parametrize(("tail", "end"), [
    (b"", b""), (b"}\n\n", b""), (b"}\r\n", b"\n"), (b"\r\n\r\n", b""), (b"x}\r", b"\n\n"),
    (b"\n}\n", b"\n"), (b"}\r\r", b""),
], ids=["nothing", "an-event's-end", "a-crlf-line's-end", "a-crlf-event's-end",
        "a-cr-maybe-half-a-crlf", "a-line's-end", "two-crs"])
def test_closer_ends_the_event_left_open(tail: bytes, end: bytes):
    assert closer(tail) == end


@pytest.mark.parametrize(("block", "end"), [
    (LINE + b"event: response.created\n", b""),  # its line ended: nothing
    (LINE + b"event: response.crea", b"\n"),  # only its line's end
    (b"event: response.created\n", b""),
    (b"id: 7\r\nevent: x\r\n", b""),
])
def test_an_event_left_open_before_its_data_line_is_not_ended_as_an_event(
    block: bytes, end: bytes
):
    # Dispatched with no data, the openai SDK parses it as JSON and fails.
    assert open_closer(block[-4:], block) == end


@pytest.mark.parametrize("block", [
    LINE + b"event: x\ndata: {\"a\":", LINE + b'data: {"a":1}\n', b'data: {"a":1}\n', b"1}\n",
])
def test_an_event_left_open_with_its_data_line_is_ended_as_an_event(block: bytes):
    assert open_closer(block[-4:], block) == closer(block[-4:]) != b""


def test_past_a_stream_s_end_only_the_lf_of_the_crlf_its_cr_began_is_still_the_stream_s():
    assert rest_of_end(b"E]\r\n\r", HeldLine(), b"\nevent: error\n") == b"\n"


def test_past_a_stream_s_end_a_read_is_none_of_the_stream_s():
    assert rest_of_end(b"E]\n\n", HeldLine(), b"\nevent: error\n") == b""
    assert rest_of_end(b"E]\n\n", HeldLine(), b"event: error\n") == b""


def test_past_a_stream_s_end_an_lf_after_a_held_line_is_no_crlf_s():
    held = HeldLine()
    held.whole_lines(b"\rxyz")
    assert rest_of_end(b"E]\r\n\r", held, b"\n") == b""
