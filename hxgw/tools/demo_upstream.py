"""`hxgw demo-upstream`: a small OpenAI-compatible server with deterministic answers.

It lets a newcomer see the whole gateway work without LiteLLM or a model:
chat and completions (plain or streamed over SSE, with the usage chunk when
asked), embeddings of a fixed dimension (as numbers, or base64 when asked), a
model list, Anthropic's Messages API (`demo_messages`), the Responses API
(`demo_responses`), moderation and rerank (`demo_scoring`), files and batches
(`demo_files`). Answers depend only on the request: "Return exactly the text: X"
answers X, "Count to N" answers "1 2 ... N", anything else is echoed back; cut at
the request's max_tokens (a word is a token here), as a model stops there.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import OrderedDict
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_sse import sse_response

from hxgw import jsonio
from hxgw.config.schema import Limits
from hxgw.tools import demo_files, demo_messages, demo_responses, demo_scoring
from hxgw.tools.demo_answers import (
    CONFIG,
    MODELS,
    completion,
    embedding_list,
    json_body,
    missing,
)


async def completions(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    chat = request.path.endswith("/chat/completions")
    if chat and not isinstance(body.get("messages"), list):
        raise missing("messages")  # as OpenAI and LiteLLM refuse it
    whole = completion(body, chat)
    if not body.get("stream"):
        return web.json_response(whole)
    ident, created, model, usage = whole["id"], whole["created"], whole["model"], whole["usage"]
    kind, choice = whole["object"], whole["choices"][0]
    words = (choice["message"]["content"] if chat else choice["text"]).split(" ")
    delay = request.app[CONFIG].chunk_delay
    async with sse_response(request, sep="\n", allow_all_methods=True) as sse:
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            chunk_choice = {"index": 0, "finish_reason": None} | (
                {"delta": delta} if chat else {"text": piece}
            )
            await sse.send(
                jsonio.dumps(
                    {
                        "id": ident,
                        "object": f"{kind}.chunk",
                        "created": created,
                        "model": model,
                        "choices": [chunk_choice],
                    }
                ).decode()
            )
            if delay:
                await asyncio.sleep(delay)
        last: dict[str, Any] = {"index": 0, "finish_reason": choice["finish_reason"]}
        if chat:
            last["delta"] = {}
        else:
            last["text"] = ""
        await sse.send(
            jsonio.dumps(
                {
                    "id": ident,
                    "object": f"{kind}.chunk",
                    "created": created,
                    "model": model,
                    "choices": [last],
                }
            ).decode()
        )
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            await sse.send(
                jsonio.dumps(
                    {
                        "id": ident,
                        "object": f"{kind}.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                ).decode()
            )
        await sse.send("[DONE]")
    return sse


async def embeddings(request: web.Request) -> web.Response:
    body = await json_body(request)
    try:
        return web.json_response(embedding_list(body, request.app[CONFIG].embedding_dim))
    except ValueError as exc:
        error = {"message": str(exc), "type": "invalid_request_error"}
        return web.json_response({"error": error}, status=400)


DEMO_MODELS_CREATED = 1_733_011_200
"""When the demo's models were made (2024-12-01)."""


async def models(request: web.Request) -> web.Response:
    # Dated as a real upstream dates its models (LiteLLM's proxy gives them all one date).
    data = [
        {"id": m, "object": "model", "created": DEMO_MODELS_CREATED, "owned_by": "hxgw-demo"}
        for m in MODELS
    ]
    return web.json_response({"object": "list", "data": data})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy"})


@web.middleware
async def _client_gone(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A stream whose client left (the gateway cancels the upstream stream when its own
    client goes, as documented) ends quietly: no traceback in `make run`'s terminal."""
    try:
        return await handler(request)
    except ConnectionResetError:
        return web.Response(status=499)


def make_demo_app(chunk_delay: float = 0.05, embedding_dim: int = 1024) -> web.Application:
    # The demo takes what the gateway takes: its default body limit.
    limit = Limits().max_body_bytes
    app = web.Application(client_max_size=limit, middlewares=[_client_gone])
    app[demo_responses.KEPT] = OrderedDict()
    app[demo_responses.INPUTS] = {}
    app[CONFIG] = argparse.Namespace(
        chunk_delay=chunk_delay, embedding_dim=embedding_dim, max_body_bytes=limit
    )
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", completions)
        app.router.add_post(f"{prefix}/completions", completions)
        app.router.add_post(f"{prefix}/embeddings", embeddings)
        app.router.add_get(f"{prefix}/models", models)
        app.router.add_post(f"{prefix}/messages", demo_messages.messages)
        app.router.add_post(f"{prefix}/messages/count_tokens", demo_messages.count_tokens)
        app.router.add_post(f"{prefix}/responses", demo_responses.create)
        app.router.add_post(f"{prefix}/responses/input_tokens", demo_responses.input_tokens)
        app.router.add_post(f"{prefix}/responses/compact", demo_responses.compact)
        app.router.add_get(f"{prefix}/responses/{{id}}", demo_responses.retrieve)
        app.router.add_delete(f"{prefix}/responses/{{id}}", demo_responses.delete)
        app.router.add_post(f"{prefix}/responses/{{id}}/cancel", demo_responses.cancel)
        app.router.add_get(f"{prefix}/responses/{{id}}/input_items", demo_responses.input_items)
        app.router.add_post(f"{prefix}/moderations", demo_scoring.moderations)
        app.router.add_post(f"{prefix}/rerank", demo_scoring.reranked)
    demo_files.add_to(app)
    app.router.add_get("/health", health)
    return app


def run(host: str, port: int, chunk_delay: float, embedding_dim: int) -> int:
    # A demo stops at once: a client still sending a refused body does not hold it up.
    try:
        web.run_app(
            make_demo_app(chunk_delay, embedding_dim),
            host=host,
            port=port,
            print=lambda _: print(f"hxgw demo upstream on http://{host}:{port}", flush=True),
            access_log=None,
            shutdown_timeout=1.0,
        )
    except OSError as exc:  # most often: the port is taken
        print(f"hxgw demo-upstream: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
