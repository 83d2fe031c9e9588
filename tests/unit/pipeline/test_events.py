"""What a block of whole SSE lines says: whether it holds the event that ends a stream
(ends_stream), an error event of the upstream's own (failed_upstream), and how many of a
chat stream's choices it says stopped (finished_choices)."""

from __future__ import annotations

import pytest

from hxgw.endpoints import (
    CHAT,
    IMAGE_EDITS,
    IMAGES,
    MESSAGES,
    RESPONSES,
    SPEECH,
    TRANSCRIPTIONS,
    Endpoint,
)
from hxgw.pipeline.answer.stream_end import (
    FINAL,
    done_event_end,
    ends_stream,
    event_end,
    failed_upstream,
    final_event_end,
    finished_choices,
    through_final,
)

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'


@pytest.mark.parametrize("block", [
    b"data: [DONE]\n\n",
    CHUNK + b"data: [DONE]\n\n",
    b"data:[DONE]\r\n\r\n",
    b'data: {"error": {"message": "overloaded"}}\n\n',
])
def test_a_chat_stream_ends_with_done_or_the_upstream_s_error(block: bytes):
    assert ends_stream(block, CHAT)


def test_a_choice_that_says_why_it_stopped_is_counted_as_finished():
    stop = b'data: {"choices":[{"index":1,"delta":{},"finish_reason": "length"}]}\n\n'
    assert finished_choices(CHUNK + stop + stop.replace(b"1", b"0")) == 2
    assert not ends_stream(stop, CHAT)  # the other choices may not have stopped yet


@pytest.mark.parametrize("text", [b"the token is [DONE]", b"\\ndata: [DONE]", b"message_stop"])
def test_a_final_word_in_the_model_s_text_ends_nothing(text: bytes):
    block = b'data: {"choices":[{"index":0,"delta":{"content":"' + text + b'"}}]}\n\n'
    assert not ends_stream(block, CHAT)
    assert not ends_stream(block, MESSAGES)


@pytest.mark.parametrize("block", [
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    b'data: {"type": "message_stop"}\n\n',
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n',
])
def test_a_messages_stream_ends_with_message_stop_or_an_error(block: bytes):
    assert ends_stream(block, MESSAGES)


def test_a_messages_stream_does_not_end_where_a_delta_says_it_stops():
    block = b'event: message_delta\ndata: {"type":"message_delta","delta":' \
            b'{"stop_reason":"end_turn"}}\n\n'
    assert not ends_stream(block, MESSAGES)


@pytest.mark.parametrize("name", [b"response.completed", b"response.incomplete",
                                  b"response.failed", b"error"])
def test_a_responses_stream_ends_with_its_last_event_by_name_or_type(name: bytes):
    assert ends_stream(b"event: " + name + b'\ndata: {"type":"' + name + b'"}\n\n', RESPONSES)
    assert ends_stream(b'data: {"type":"' + name + b'","sequence_number":9}\n\n', RESPONSES)


def test_a_responses_stream_ends_where_its_type_is_not_the_data_s_first_key():
    # As a serializer that puts `type` last (pydantic's, field order) writes it.
    block = b'data:{"response":{"id":"resp_1"},"sequence_number":9,"type":"response.completed"}\n\n'
    assert ends_stream(block, RESPONSES)


@pytest.mark.parametrize("named", [True, False])
def test_a_responses_event_echoing_metadata_typed_error_ends_nothing(named: bool):
    # The client's own metadata, echoed in response.created, is no error event.
    data = (b'data: {"type":"response.created","response":{"id":"resp_1",'
            b'"metadata":{"type":"error"}}}\n\n')
    block = (b"event: response.created\n" if named else b"") + data
    assert not ends_stream(block, RESPONSES)


def test_a_responses_text_delta_ends_nothing():
    delta = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",' \
            b'"delta":"response.completed"}\n\n'
    assert not ends_stream(delta, RESPONSES)


def _failed(block: bytes, route: Endpoint) -> bool:
    """Whether the final event of `block`, a stream of `route`, says it failed."""
    return failed_upstream(through_final(block, FINAL[route]), FINAL[route])


@pytest.mark.parametrize("block", [
    b'data: {"error": {"message": "overloaded"}}\n\n',
    b'data: {"choices":[]}\n\nevent: error\ndata: {"type":"error","error":{}}\n\n',
])
def test_an_error_event_of_the_upstream_s_own_is_a_failure(block: bytes):
    assert _failed(block, CHAT)


@pytest.mark.parametrize("block", [
    b'event: response.failed\ndata: {"type":"response.failed","response":{}}\n\n',
    b'data: {"type":"response.failed","response":{}}\n\n',
    b'data: {"type":"error","code":"server_error","message":"boom"}\n\n',
    b'data: {"response":{"status":"failed"},"sequence_number":9,"type":"response.failed"}\n\n',
])
def test_a_responses_stream_that_ends_failed_is_a_failure(block: bytes):
    assert _failed(block, RESPONSES)


def test_a_response_that_echoes_a_client_s_metadata_of_type_error_is_no_failure():
    completed = b'event: response.completed\ndata: {"type":"response.completed","response":' \
                b'{"metadata":{"type":"error"}}}\n\n'
    assert not _failed(completed, RESPONSES)


@pytest.mark.parametrize("named", [True, False])
def test_an_error_after_a_whole_response_in_the_same_read_is_no_failure(named: bool):
    completed = b'data: {"type":"response.completed","response":{}}\n\n'
    error = b'data: {"type":"error","code":"server_error","message":"late"}\n\n'
    name = b"event: response.completed\n" if named else b""
    assert not _failed(name + completed + error, RESPONSES)


def test_a_nameless_failure_before_done_in_the_same_read_is_a_failure():
    failed = b'data: {"type":"response.failed","response":{}}\n\ndata: [DONE]\n\n'
    assert _failed(failed, RESPONSES)


def test_an_error_object_after_a_nameless_whole_response_in_the_same_read_is_no_failure():
    completed = b'data: {"type":"response.completed","response":{}}\n\n'
    assert not _failed(completed + b'data: {"error":{"message":"late"}}\n\n', RESPONSES)


def test_a_chat_stream_s_text_about_a_failed_response_is_no_failure():
    said = b'data: {"choices":[{"delta":{"content":"event: response.failed"}}]}\n\n'
    assert not _failed(said, CHAT)


@pytest.mark.parametrize(("route", "name"), [
    (TRANSCRIPTIONS, b"transcript.text.done"),
    (SPEECH, b"speech.audio.done"),
    (IMAGES, b"image_generation.completed"),
    (IMAGE_EDITS, b"image_edit.completed"),
])
def test_a_media_stream_ends_with_its_done_event_by_name_or_type(route: Endpoint, name: bytes):
    assert ends_stream(b"event: " + name + b'\ndata: {"type":"' + name + b'"}\n\n', route)
    assert ends_stream(b'data: {"type":"' + name + b'","usage":{}}\n\n', route)
    assert not ends_stream(b'data: {"type":"transcript.text.delta","delta":"x"}\n\n', route)


def test_the_first_piece_of_a_final_line_too_long_to_hold_ends_a_responses_stream():
    piece = b'data: {"type":"response.completed","sequence_number":9,"response":{"output":"AAAA'
    assert ends_stream(piece, RESPONSES)


def test_a_final_type_deeper_in_a_piece_is_not_taken_for_the_object_s_own():
    # A client's metadata, which the response echoes, in a line too long to read whole.
    piece = b'data: {"type":"response.in_progress","response":{"metadata":{"type":"response.' \
            b'completed","x":"AAAA'
    assert not ends_stream(piece, RESPONSES)


def test_a_nameless_error_line_does_not_end_a_messages_stream():
    # LiteLLM's, from a broken stream: the client must get the gateway's error event.
    assert not ends_stream(b'data: {"error": {"message": "boom"}}\n\n', MESSAGES)
    assert ends_stream(b'event: error\ndata: {"type": "error"}\n\n', MESSAGES)


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n"])
def test_the_final_event_ends_at_the_blank_line_after_its_data_whatever_its_line_ends(end: bytes):
    stop = b'event: message_stop' + end[: len(end) // 2] + b'data: {"type":"message_stop"}' + end
    block = stop + b"event: error" + end
    through = through_final(block, FINAL[MESSAGES])
    assert final_event_end(block, through) == len(stop)


def test_a_final_event_not_ended_in_its_read_has_no_end_there():
    block = b'event: message_stop\ndata: {"type":"message_stop"}\n'
    assert final_event_end(block, through_final(block, FINAL[MESSAGES])) is None


def test_done_ends_at_the_blank_line_after_it():
    block = b'data: {"choices":[]}\n\ndata: [DONE]\n\ndata: {"error":{}}\n\n'
    assert block[: done_event_end(block)].endswith(b"data: [DONE]\n\n")


def test_an_event_s_end_is_its_first_blank_line():
    assert event_end(b'data: {"x":1}\n\nevent: error\n\n') == len(b'data: {"x":1}\n\n')
    assert event_end(b'data: {"x":1}\n') is None
