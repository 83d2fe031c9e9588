"""How a stream opens: the error event it opens with, past comments and the events that
open a stream before any of its answer."""

from __future__ import annotations

import pytest

from hxgw.pipeline.opening import opening_error

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'


@pytest.mark.parametrize("first", [
    b'data: {"error": {"message": "provider overloaded"}}\n\n',
    b": OPENROUTER PROCESSING\n\n" + b'data: {"error": {"message": "provider overloaded"}}\n\n',
    b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    b'event: ping\ndata: {"type":"ping"}\n\n'
    b'event: error\ndata: {"type":"error","error":{"message":"provider overloaded"}}\n\n',
    b'data: {"type":"response.created","response":{}}\n\n'
    b'data: {"type":"error","error":{"message":"provider overloaded"}}\n\n',
], ids=["error-first", "after-comments", "after-message-start", "after-response-created"])
def test_a_stream_that_opens_with_an_error_says_what_it_said(first: bytes):
    assert opening_error(first) == (
        "the upstream's stream opened with an error event: provider overloaded")


@pytest.mark.parametrize("first", [
    CHUNK,
    CHUNK + b'data: {"error": {"message": "cut"}}\n\n',
    b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start"}\n\n',
    b'data: {"type":"response.created","response":{"metadata":{"type":"error"}}}\n\n',
], ids=["a-chunk", "an-error-after-the-answer-began", "content-after-start", "metadata"])
def test_a_stream_that_opens_with_its_answer_opens_with_no_error(first: bytes):
    assert opening_error(first) is None
