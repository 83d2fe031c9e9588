"""How a stream opens: the error event it opens with, past comments and the events that
open a stream before any of its answer."""

from __future__ import annotations

import pytest

from hxgw.pipeline.answer.opening import OpeningError, Preamble, opening_error

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'


@pytest.mark.parametrize("first", [
    b'data: {"error": {"message": "provider overloaded"}}\n\n',
    b": OPENROUTER PROCESSING\n\n" + b'data: {"error": {"message": "provider overloaded"}}\n\n',
    b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    b'event: ping\ndata: {"type":"ping"}\n\n'
    b'event: error\ndata: {"type":"error","error":{"message":"provider overloaded"}}\n\n',
    b'data: {"type":"response.created","response":{}}\n\n'
    b'data: {"type":"error","error":{"message":"provider overloaded"}}\n\n',
    # OpenRouter's chunk names its id and choices before its error: the SDK raises on it.
    b": OPENROUTER PROCESSING\n\n" + b'data: {"id":"gen-1","object":"chat.completion.chunk",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"error"}],'
    b'"error":{"code":502,"message":"provider overloaded"}}\n\n',
    b'id: 1\ndata: {"error": {"message": "provider overloaded"}}\n\n',
    b'data: {"type":"response.created","response":{}}\n\n'
    b'data: {"type":"response.failed","response":{"status":"failed",'
    b'"error":{"code":"server_error","message":"provider overloaded"}}}\n\n',
], ids=["error-first", "after-comments", "after-message-start", "after-response-created",
        "error-key-not-first", "after-an-id-line", "response-failed"])
def test_a_stream_that_opens_with_an_error_says_what_it_said(first: bytes):
    assert opening_error(first) == OpeningError(
        "the upstream's stream opened with an error event: provider overloaded")


def test_a_stream_that_opens_with_anthropics_overloaded_error_is_said_to_be_overloaded():
    first = (b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
             b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
             b'"message":"Overloaded"}}\n\n')
    assert opening_error(first) == OpeningError(
        "the upstream's stream opened with an error event: Overloaded", overloaded=True)


@pytest.mark.parametrize("first", [
    CHUNK,
    CHUNK + b'data: {"error": {"message": "cut"}}\n\n',
    b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start"}\n\n',
    b'data: {"type":"response.created","response":{"metadata":{"type":"error"}}}\n\n',
], ids=["a-chunk", "an-error-after-the-answer-began", "content-after-start", "metadata"])
def test_a_stream_that_opens_with_its_answer_opens_with_no_error(first: bytes):
    assert opening_error(first) is None


PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def _fed(preamble: Preamble, data: bytes, size: int = 1) -> list[bool]:
    return [preamble.goes_on(data[at:at + size]) for at in range(0, len(data), size)]


EMPTY_TEXT = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
              b'"content_block":{"type":"text","text":""}}\n\n')
OVERLOADED = (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
              b'"message":"Overloaded"}}\n\n')


@pytest.mark.parametrize("block", [
    EMPTY_TEXT,
    b'data: {"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1",'
    b'"type":"message","status":"in_progress","content":[],"role":"assistant"}}\n\n'
    b'data: {"type":"response.content_part.added","item_id":"msg_1","output_index":0,'
    b'"content_index":0,"part":{"type":"output_text","annotations":[],"text":""}}\n\n',
], ids=["anthropic-text", "responses-message"])
def test_an_error_after_an_empty_block_of_text_begins_is_still_an_opening_error(block: bytes):
    # Both APIs start a block before its first delta: nothing of the answer is in it.
    first = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    assert opening_error(first + block + OVERLOADED) is not None
    assert all(_fed(Preamble(), first + block, size=7))


def test_a_tool_call_s_start_is_answer_not_opening():
    tool = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
            b'"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather",'
            b'"input":{}}}\n\n')
    assert opening_error(tool + OVERLOADED) is None
    assert not all(_fed(Preamble(), tool + PING, size=7))


def test_an_opening_of_pings_and_comments_read_a_byte_at_a_time_goes_on():
    assert all(_fed(Preamble(), b": OPENROUTER PROCESSING\n\n" + PING * 3))


def test_the_answer_s_first_event_ends_the_opening_at_its_blank_line():
    said = _fed(Preamble(), PING + CHUNK)
    assert said.index(False) == len(PING + CHUNK) - 1


def test_an_event_not_yet_ended_is_not_judged():
    assert Preamble().goes_on(PING + CHUNK[:-1])


def test_a_crlf_cut_between_two_reads_makes_no_blank_line():
    preamble = Preamble()
    start = b'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
    opened = b'event: message_start\r'
    assert preamble.goes_on(start) and preamble.goes_on(opened)
    # Its LF ends no line: the event goes on with a data line, not as one of its own.
    assert preamble.goes_on(b'\n') and preamble.goes_on(b'data: {"type":"x"}\r\n\r\n')


def test_lone_crs_end_lines_and_events():
    preamble = Preamble()
    assert preamble.goes_on(PING.replace(b"\n", b"\r"))
    assert not preamble.goes_on(CHUNK.replace(b"\n", b"\r"))
