"""The demo upstream's Anthropic Messages API (`/v1/messages`, `/count_tokens`), answered
as api.anthropic.com does: a `message`, or its stream of named events
(`message_start` ... `message_stop`), with the same deterministic answers."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from aiohttp import web

from hxgw import jsonio
from hxgw.tools.demo_answers import CONFIG, answer_words, json_body, prompt_of


async def messages(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    model = str(body.get("model") or "demo")
    prompt = prompt_of(body)
    words, cut = answer_words(body, prompt, "max_tokens")
    stop = "max_tokens" if cut else "end_turn"
    usage = {"input_tokens": len(prompt.split()), "output_tokens": len(words)}
    reply: dict[str, Any] = {
        "id": "msg_demo" + hashlib.sha256(prompt.encode()).hexdigest()[:16],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": " ".join(words)}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if body.get("stream") is not True:
        return web.json_response(reply, dumps=lambda v: jsonio.dumps(v).decode())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    start = {**reply, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    await _event(response, "message_start", {"message": start})
    await _event(
        response, "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
    )
    delay = request.app[CONFIG].chunk_delay
    for i, word in enumerate(words):
        text = word if i == 0 else " " + word
        await _event(
            response,
            "content_block_delta",
            {"index": 0, "delta": {"type": "text_delta", "text": text}},
        )
        await asyncio.sleep(delay)
    await _event(response, "content_block_stop", {"index": 0})
    await _event(
        response,
        "message_delta",
        {
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": len(words)},
        },
    )
    await _event(response, "message_stop", {})
    await response.write_eof()
    return response


async def count_tokens(request: web.Request) -> web.Response:
    body = await json_body(request)
    return web.json_response({"input_tokens": len(prompt_of(body).split())})


async def _event(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    await response.write(
        b"event: " + name.encode() + b"\ndata: " + jsonio.dumps({"type": name, **data}) + b"\n\n"
    )
