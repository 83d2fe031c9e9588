"""A fast fake OpenAI-compatible upstream for the benchmark: no artificial delay.

    python bench/upstream.py PORT

- `POST /v1/chat/completions`: a fixed JSON chat reply, or, when the body asks
  for `"stream": true`, an SSE stream of `bench.chunks` chunks (default 50)
  sent `bench.interval` seconds apart (default 0), each stamped with the
  upstream's `time.monotonic()` at the moment it was written (`"t"`), so a
  client on the same machine can tell how long each chunk took to reach it.
- `POST /v1/embeddings`: reads the whole (large) body, answers a small vector.
- `GET /v1/models`, `GET /healthz`.

The same fixed chat reply (`CHAT_REPLY`) is what the nginx fixed-JSON upstream
of `bench/run.py` returns, so both upstreams are interchangeable.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
import uvloop
from aiohttp import web

CHAT_REPLY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "HX-OK"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    }
)
EMBEDDING_REPLY = orjson.dumps(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.125] * 16}],
        "model": "bench-model",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
)
MODELS_REPLY = orjson.dumps({"object": "list", "data": [{"id": "bench-model", "object": "model"}]})
CHUNK = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"delta":{"content":"tok%d "},'
    b'"finish_reason":null}],"t":%.6f}\n\n'
)
JSON = "application/json"


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    if b'"stream"' not in body:
        return web.Response(body=CHAT_REPLY, content_type=JSON)
    parsed = orjson.loads(body)
    if parsed.get("stream") is not True:
        return web.Response(body=CHAT_REPLY, content_type=JSON)
    params = parsed.get("bench") or {}
    chunks, interval = int(params.get("chunks", 50)), float(params.get("interval", 0.0))
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    start = time.monotonic()
    for i in range(chunks):
        if interval and i:
            # Absolute schedule: a late wake-up does not push every later chunk back.
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
        await response.write(CHUNK % (i, time.monotonic()))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def embeddings(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=EMBEDDING_REPLY, content_type=JSON)


async def models(request: web.Request) -> web.Response:
    return web.Response(body=MODELS_REPLY, content_type=JSON)


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", models)
    return app


def main() -> None:
    port = int(sys.argv[1])
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=port,
        access_log=None,
        backlog=4096,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
