"""Anthropic's Messages API as the fake upstream serves it, answering as
api.anthropic.com does (and LiteLLM's /v1/messages, which copies it): a `message`
object, or a stream of `message_start`, `content_block_start`, `ping`,
`content_block_delta` (one `text_delta` a word), `content_block_stop`,
`message_delta` (stop reason and output tokens) and `message_stop`, each event
named on its `event:` line and in its `type`; errors as `{"type": "error", ...}`;
every answer with its `request-id` header.

The model's `Behaviour` (tests/fake_upstream.py) applies as it does on the OpenAI
routes, its faults played by the same code (tests/fake_faults.py): a chunk is a
`content_block_delta`, and garbage is one of those broken off. A setting Anthropic's
API has no way to answer with, or one only the OpenAI routes play, is refused
(`NotForAnthropic`), not quietly ignored.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests import fake_faults

if TYPE_CHECKING:
    from tests.fake_upstream import Behaviour

INPUT_TOKENS = 11
CACHED_TOKENS = 2048
"""What a request with a `cache_control` block reads from the prompt cache, as Anthropic
reports it: beside `input_tokens`, which counts only the rest of the prompt."""
_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}
"""Anthropic's error types by status (its API reference's errors page)."""
REQUEST_ID = "req_fake"
_HEADERS = {"request-id": REQUEST_ID}
_GARBAGE = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "de'
"""A delta broken off mid-JSON, as `garbage_after_chunks` sends it before its reset."""


class NotForAnthropic(ValueError):
    """A `Behaviour` setting Anthropic's API has no way to answer with, or that this fake
    does not play. The handler
    raises it, so the test that asked for it fails, loudly, where a fake that ignored it
    would have let it pass without the fault it meant to test."""


def anthropic_error(how: Behaviour) -> web.Response:
    """`how.status` as Anthropic answers it: its error type for that status (or
    `error_type`), `error_message`, a `retry-after` when given, and the test's `headers`."""
    if how.error_code is not None:
        raise NotForAnthropic(
            "error_code: Anthropic's errors have a type and a message, and no code; give "
            "error_type, or openai_shaped=True for the OpenAI-shaped errors LiteLLM sends")
    if how.retry_after_ms is not None:
        raise NotForAnthropic(
            "retry_after_ms: Anthropic asks for a wait in retry-after alone (seconds); give "
            "retry_after, openai_shaped=True for the OpenAI-shaped errors LiteLLM sends, or "
            "headers={'retry-after-ms': ...} for the header whatever the shape")
    kind = how.error_type or _ERRORS.get(how.status, "api_error")
    body = {"type": "error",
            "error": {"type": kind, "message": how.error_message or f"fake {kind}"},
            "request_id": REQUEST_ID}
    headers = dict(_HEADERS)
    if how.retry_after is not None:  # as Anthropic asks a rate-limited client to wait
        headers["retry-after"] = how.retry_after
    headers.update(how.headers or {})
    return web.json_response(body, status=how.status, headers=headers)


def _refuse_unplayed(how: Behaviour) -> None:
    """The OpenAI routes' settings this route does not play (no gateway test has needed
    them on Anthropic's yet): refused, so a test that comes to need one says so."""
    unplayed = {"sse_extras": how.sse_extras, "body_bytes": how.body_bytes is not None,
                "stream_bytes": how.stream_bytes is not None}
    for setting, given in unplayed.items():
        if given:
            raise NotForAnthropic(f"{setting}: the fake Anthropic API does not play it (the "
                                  "OpenAI routes do); give a script for such an answer")


def message(model: str, words: list[str], cached: int = 0) -> dict[str, Any]:
    return {"id": "msg_fake01", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": " ".join(words)}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": cached,
                      "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                         "ephemeral_1h_input_tokens": 0},
                      "output_tokens": len(words), "service_tier": "standard"}}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


async def respond(request: web.Request, body: Any, how: Behaviour) -> web.StreamResponse:
    _refuse_unplayed(how)
    await fake_faults.before_headers(request, how)
    if how.status >= 400 and how.openai_shaped:
        from tests.fake_upstream import openai_error
        return openai_error(how)
    if how.status >= 400:
        return anthropic_error(how)
    streaming = isinstance(body, dict) and bool(body.get("stream"))
    if how.silent_after_headers:
        await fake_faults.silence(request, how, streaming, _HEADERS)
    if how.script is not None:  # events as the test writes them
        return await fake_faults.scripted(request, how, streaming)
    model = str(body.get("model")) if isinstance(body, dict) else "?"
    words = how.content.split(" ")
    cached = CACHED_TOKENS if '"cache_control"' in json.dumps(body) else 0
    if not streaming:
        payload = json.dumps(message(model, words, cached)).encode()
        return await fake_faults.whole_body(request, payload, how, _HEADERS)
    return await _stream(request, model, words, cached, how)


async def _stream(request: web.Request, model: str, words: list[str], cached: int,
                  how: Behaviour) -> web.StreamResponse:
    response = await fake_faults.open_stream(request, how, _HEADERS)
    start = message(model, [], cached)
    start["content"], start["stop_reason"] = [], None
    start["usage"]["output_tokens"] = 1
    await response.write(_event("message_start", {"message": start}))
    await response.write(_event("content_block_start",
                                {"index": 0, "content_block": {"type": "text", "text": ""}}))
    await response.write(_event("ping", {}))
    for i, word in enumerate(words):
        await fake_faults.before_chunk(request, response, i, how, _GARBAGE)
        if i == how.end_after_chunks:
            await response.write_eof()
            return response
        text = word if i == 0 else " " + word
        await response.write(_event("content_block_delta",
                                    {"index": 0, "delta": {"type": "text_delta", "text": text}}))
        if i == 0 and how.gate is not None:
            await how.gate.wait()
        if how.chunk_delay:
            await asyncio.sleep(how.chunk_delay)
    await response.write(_event("content_block_stop", {"index": 0}))
    # As Anthropic's API sends it now: the usage so far, input counts repeated.
    await response.write(_event("message_delta", {
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": cached, "output_tokens": len(words)}}))
    await response.write(_event("message_stop", {}))
    await response.write_eof()
    return response


def count_tokens(body: Any) -> web.Response:
    return web.json_response({"input_tokens": INPUT_TOKENS + len(json.dumps(body)) // 100})
