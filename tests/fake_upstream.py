"""A fake OpenAI-compatible upstream that misbehaves on request, like real ones do.

Each model name can be given a `Behaviour`: a status, slow headers, a reset
before the headers or in the middle of a stream, silence after the headers,
SSE comments and event/id lines. Every request is recorded (path, headers,
body), and so is every request whose client went away while it was running,
so tests can see cancellation from the upstream's side.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from hxgw.tools import demo_scoring
from tests import fake_anthropic, fake_faults, fake_files, fake_media, fake_responses

CREATED = 1_733_000_000
"""Every answer's `created`, which OpenAI's chat objects carry (Unix seconds): fixed, so
an answer's bytes are the same from run to run."""

MODELS_CREATED = 1_686_935_002
"""The `created` of the first model the fake lists."""


@dataclass
class Behaviour:
    status: int = 200
    content: str = "Hello there from the fake upstream"
    header_delay: float = 0.0
    chunk_delay: float = 0.0
    reset_before_headers: bool = False
    reset_after_chunks: int | None = None
    hang_after_chunks: int | None = None
    garbage_after_chunks: int | None = None
    # A stream that ends cleanly after that many chunks, its final event never sent.
    end_after_chunks: int | None = None
    # An error status answers as OpenAI does (`openai_error`); these override its parts.
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    sse_extras: bool = False
    # When set, the stream pauses after its first chunk until the test sets it.
    gate: asyncio.Event | None = None
    content_length: bool = True
    # Additions for the fault suite (tests/faults); each is off by default.
    # Extra response headers (e.g. hop-by-hop ones the gateway must not pass on).
    headers: dict[str, str] | None = None
    # Send the status line and headers, then nothing at all (both modes).
    silent_after_headers: bool = False
    # Non-streaming: send the first half of the body, then go silent.
    hang_mid_body: bool = False
    # A scripted 200 response: (delay before, bytes) pieces written in order, then
    # `script_end`: "eof" (a clean end), "reset" or "hang". Content type is SSE for
    # streaming requests, JSON otherwise; plain ones get a Content-Length when
    # `content_length` (the sum of the pieces).
    script: tuple[tuple[float, bytes], ...] | None = None
    script_end: str = "eof"
    # A large response: a JSON body of exactly `body_bytes` bytes, or an SSE stream of
    # about `stream_bytes` bytes in events of `event_bytes`, then `[DONE]`. Bytes
    # written so far are kept in `FakeUpstream.progress[model]`, so a test sees when
    # backpressure pauses the upstream.
    body_bytes: int | None = None
    stream_bytes: int | None = None
    event_bytes: int = 16384
    # An upload refused (with `status`) as soon as its model field is read, the rest unread.
    early: bool = False
    # On /v1/messages, errors in OpenAI's shape, as some LiteLLM versions answer them.
    openai_shaped: bool = False


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None
    # Every header line as received, duplicates included (`headers` keeps one per name).
    header_list: list[tuple[str, str]] = field(default_factory=list)
    query: str = ""
    raw_path: str = ""


@dataclass
class FakeUpstream:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    # Requests whose connection the gateway dropped while this upstream was writing.
    aborted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    admin_hits: list[str] = field(default_factory=list)
    model_lists: list[Seen] = field(default_factory=list)
    models_down: bool = False
    models_refusal: Behaviour | None = None
    """An error the model list is answered with instead (LiteLLM's "No connected db.")."""
    models_paged: bool = False
    """The model list is the first page of more (`has_more`, as Anthropic's pages it)."""
    models: list[str] = field(default_factory=lambda: ["m-alpha", "m-beta", "m-gamma", "m-embed"])
    request_seen: asyncio.Event = field(default_factory=asyncio.Event)
    progress: dict[str, int] = field(default_factory=dict)
    # File bytes of the upload to each path received so far (tests.fake_media).
    upload_progress: dict[str, int] = field(default_factory=dict)
    # A fault mid-upload per upload path or per (path, upstream model), and the uploads
    # the gateway dropped (fake_media).
    upload_faults: fake_media.UploadFaults = field(default_factory=dict)
    uploads_started: list[str] = field(default_factory=list)
    uploads_cancelled: list[str] = field(default_factory=list)
    stalled: list[web.Request] = field(default_factory=list)
    client_max_size: int = 1024**2  # aiohttp's default; raise it to accept huge bodies
    responses: fake_responses.ResponseStore = field(default_factory=fake_responses.ResponseStore)
    files: fake_files.FileStore = field(default_factory=fake_files.FileStore)
    handling: int = 0
    """Requests whose handler is still running: a test sharing this fake with the next
    waits for them (`settled`), or they would record into the next test's state."""

    def reset(self) -> None:
        """Forget what earlier tests asked of it and saw: as new, on the same port. The
        app's handlers are this object's methods, and read the fresh state; the file
        store's routes hold the store itself, which is emptied in place."""
        fresh = FakeUpstream(client_max_size=self.client_max_size, handling=self.handling)
        self.files.__dict__.update(fresh.files.__dict__)
        fresh.files = self.files
        self.__dict__.update(fresh.__dict__)

    async def settled(self, timeout: float = 1.0) -> None:
        """Wait, a second at most, for the handlers still running to end (the gateway
        cancels those whose client left as soon as it sees it)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.handling:
                    await asyncio.sleep(0.01)

    @web.middleware
    async def _counted(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.handling += 1
        try:
            return await handler(request)
        finally:
            self.handling -= 1

    def behave(self, model: str, **kwargs: Any) -> Behaviour:
        self.behaviours[model] = Behaviour(**kwargs)
        return self.behaviours[model]

    def abort_stalled(self) -> None:
        """Cut the uploads that stopped reading: a server shutting down waits for them."""
        for request in self.stalled:
            if request.transport is not None:
                request.transport.abort()

    def seen_models(self) -> list[str | None]:
        return [r.model for r in self.requests]

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.client_max_size,
                              middlewares=[self._counted, fake_media.upload_faults(self)])
        app.router.add_post("/v1/chat/completions", self._completion)
        app.router.add_post("/v1/completions", self._completion)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/moderations", self._moderations)
        app.router.add_post("/v1/rerank", self._rerank)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/responses/input_tokens", self._responses_counted)
        app.router.add_post("/v1/responses/compact", self._responses_counted)
        app.router.add_get("/v1/responses/{id}", self._on_response)
        app.router.add_delete("/v1/responses/{id}", self._on_response)
        app.router.add_post("/v1/responses/{id}/cancel", self._on_response)
        app.router.add_get("/v1/responses/{id}/input_items", self._on_response)
        app.router.add_routes(self.files.routes())
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_post("/v1/audio/translations", self._transcription)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/images/generations", self._image_generation)
        app.router.add_post("/v1/images/edits", self._image_form)
        app.router.add_post("/v1/images/variations", self._image_form)
        app.router.add_route("*", "/{tail:.*}", self._admin)
        return app

    async def _record(self, request: web.Request) -> tuple[Any, Behaviour]:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        model = body.get("model") if isinstance(body, dict) else None
        self.requests.append(Seen(request.path, dict(request.headers), body, model,
                                  list(request.headers.items()), request.query_string,
                                  request.raw_path.partition("?")[0]))
        self.request_seen.set()
        return body, self.behaviours.get(str(model), Behaviour())

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        body, how = await self._record(request)
        model = str(body.get("model")) if isinstance(body, dict) else "?"
        return await self._answered(model, self._respond(request, body, how))

    async def _answered(
        self, model: str, answer: Awaitable[web.StreamResponse]
    ) -> web.StreamResponse:
        """`answer`, kept as what became of it: finished, cancelled (the gateway left
        before it was written) or aborted (the gateway dropped it mid-write)."""
        try:
            response = await answer
        except asyncio.CancelledError:
            self.cancelled.append(model)
            raise
        except ConnectionError:
            self.aborted.append(model)
            raise
        self.finished.append(model)
        return response

    async def _respond(self, request: web.Request, body: Any, how: Behaviour) -> web.StreamResponse:
        await fake_faults.before_headers(request, how)
        if how.status >= 400:
            return openai_error(how)
        if (refused := _too_many_choices(body)) is not None:
            return refused
        streaming = isinstance(body, dict) and bool(body.get("stream"))
        if how.silent_after_headers:
            await fake_faults.silence(request, how, streaming)
        if how.script is not None:
            return await fake_faults.scripted(request, how, streaming)
        if how.body_bytes is not None and not streaming:
            return await self._big_body(request, body, how)
        if how.stream_bytes is not None and streaming:
            return await self._big_stream(request, body, how)
        words = how.content.split(" ")
        if not streaming:
            legacy = request.path == "/v1/completions"
            count = _choice_count(body, legacy)
            payload = json.dumps({"id": "fake-1",
                "object": "text_completion" if legacy else "chat.completion", "created": CREATED,
                "model": body.get("model"),
                "choices": [_choice(legacy, how.content, "stop", i) for i in range(count)],
                "usage": openai_usage(3, count * len(words))}).encode()
            return await fake_faults.whole_body(request, payload, how)
        return await self._stream(request, body, how, words)

    async def _stream(self, request: web.Request, body: dict[str, Any], how: Behaviour,
                      words: list[str]) -> web.StreamResponse:
        response = await fake_faults.open_stream(request, how)
        # Legacy completions stream `text_completion` objects whose choices carry `text`.
        legacy = request.path == "/v1/completions"
        kind = "text_completion" if legacy else "chat.completion.chunk"
        count = _choice_count(body, legacy)
        if how.sse_extras:
            await response.write(b": ping\n\nevent: meta\nid: 7\ndata: {\"note\": \"hi\"}\n\n")
        options = body.get("stream_options") or {}
        # As OpenAI: asked for usage, every chunk says "usage": null but the last one.
        usage_field = {"usage": None} if options.get("include_usage") else {}
        for i, word in enumerate(words):
            await fake_faults.before_chunk(request, response, i, how, _GARBAGE)
            if i == how.end_after_chunks:
                await response.write_eof()
                return response
            for index in range(count):  # as OpenAI: one choice a chunk, the choices in turn
                choice = _chunk_choice(legacy, word if i == 0 else " " + word, None, index)
                if i == 0 and not legacy:  # the role, with the first text, as LiteLLM sends
                    choice["delta"] = {"role": "assistant", **choice["delta"]}
                chunk = {"id": "fake-1", "object": kind, "created": CREATED,
                         "model": body.get("model"), "choices": [choice], **usage_field}
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if i == 0 and how.gate is not None:
                await how.gate.wait()
            if how.chunk_delay:
                await asyncio.sleep(how.chunk_delay)
        for index in range(count):
            final = {"id": "fake-1", "object": kind, "created": CREATED,
                     "model": body.get("model"),
                     "choices": [_chunk_choice(legacy, "", "stop", index)], **usage_field}
            await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
        if options.get("include_usage"):
            usage = {"id": "fake-1", "object": kind, "created": CREATED,
                     "model": body.get("model"), "choices": [],
                     "usage": openai_usage(3, count * len(words))}
            await response.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _big_body(self, request: web.Request, body: dict[str, Any],
                        how: Behaviour) -> web.StreamResponse:
        assert how.body_bytes is not None
        model = str(body.get("model"))
        head = b'{"id": "fake-big", "object": "chat.completion", "choices": [{"index": 0, ' \
               b'"message": {"role": "assistant", "content": "'
        tail = b'"}, "finish_reason": "stop"}]}'
        filler = how.body_bytes - len(head) - len(tail)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = how.body_bytes
        await response.prepare(request)
        self.progress[model] = 0
        await response.write(head)
        block = b"x" * 65536
        left = filler
        while left > 0:
            piece = block if left >= len(block) else block[:left]
            await response.write(piece)
            left -= len(piece)
            self.progress[model] = len(head) + filler - left
        await response.write(tail)
        self.progress[model] = how.body_bytes
        await response.write_eof()
        return response

    async def _big_stream(self, request: web.Request, body: dict[str, Any],
                          how: Behaviour) -> web.StreamResponse:
        assert how.stream_bytes is not None
        model = str(body.get("model"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        text = "y" * max(1, how.event_bytes - 120)
        chunk = {"id": "fake-big", "object": "chat.completion.chunk", "model": body.get("model"),
                 "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        event = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        sent = 0
        self.progress[model] = 0
        while sent < how.stream_bytes:
            await response.write(event)
            sent += len(event)
            self.progress[model] = sent
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, how = await self._record(request)
        if how.status >= 400:
            return openai_error(how)
        texts = body.get("input", body.get("prompt")) if isinstance(body, dict) else None
        texts = texts if isinstance(texts, list) else [texts]
        # As the real API: floats, or little-endian float32s in base64 when asked (the node
        # openai SDK asks for base64 unless told otherwise, and decodes without looking).
        vector: Any = [0.5] * 8
        if isinstance(body, dict) and body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack("<8f", *vector)).decode()
        data = [{"object": "embedding", "index": i, "embedding": vector}
                for i, _ in enumerate(texts)]
        # As the real API, always: a token a word here (a token id one).
        tokens = sum(len(t.split()) if isinstance(t, str) else 1 for t in texts) or 1
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response({"object": "list", "data": data, "model": body.get("model"),
                                  "usage": usage})

    async def _models(self, request: web.Request) -> web.Response:
        # Kept apart from `requests`: the gateway's readiness probe asks for this list too.
        self.model_lists.append(Seen(request.path, dict(request.headers), None, None))
        if self.models_down:
            return web.json_response({"error": {"message": "down"}}, status=503)
        if self.models_refusal is not None:
            return openai_error(self.models_refusal)
        # Each dated a day after the one before, as OpenAI dates each model it lists.
        data = [{"id": m, "object": "model", "created": MODELS_CREATED + day * 86_400,
                 "owned_by": "fake"} for day, m in enumerate(self.models)]
        paged = {"has_more": True, "last_id": data[-1]["id"]} if self.models_paged else {}
        return web.json_response({"object": "list", "data": data, **paged})

    async def _moderations(self, request: web.Request) -> web.Response:
        body, how = await self._record(request)
        if how.status >= 400:
            return openai_error(how)
        return web.json_response(demo_scoring.moderation(body if isinstance(body, dict) else {}))

    async def _rerank(self, request: web.Request) -> web.Response:
        body, how = await self._record(request)
        if how.status >= 400:
            return openai_error(how)
        return web.json_response(demo_scoring.rerank(body if isinstance(body, dict) else {}))

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, how = await self._record(request)
        model = str(body.get("model")) if isinstance(body, dict) else "?"
        return await self._answered(model, fake_anthropic.respond(request, body, how))

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body, how = await self._record(request)
        if how.status >= 400:
            return fake_anthropic.anthropic_error(how)
        return fake_anthropic.count_tokens(body)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body, how = await self._record(request)
        if how.status >= 400:
            return openai_error(how)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "bad body"}}, status=400)
        if how.script is not None:  # events as the test writes them
            answer = fake_faults.scripted(request, how, bool(body.get("stream")))
        else:
            answer = self.responses.create(request, body, how)
        return await self._answered(str(body.get("model")), answer)

    async def _responses_counted(self, request: web.Request) -> web.Response:
        """The input tokens of a would-be response, or a conversation compacted."""
        body, how = await self._record(request)
        if how.status >= 400:
            return openai_error(how)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "bad body"}}, status=400)
        if request.path.endswith("/compact"):
            return self.responses.compact(body)
        return self.responses.input_tokens(body)

    async def _on_response(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response_id = request.match_info["id"]
        store = self.responses
        if request.method == "DELETE":
            return store.delete(response_id)
        if request.path.endswith("/cancel"):
            return store.cancel(response_id)
        if request.path.endswith("/input_items"):
            return store.input_items(response_id, request.query)
        made = store.made.get(response_id)
        how = self.behaviours.get(str(made.response["model"]) if made else "", Behaviour())
        return await store.retrieve(request, response_id, how)
    async def _transcription(self, request: web.Request) -> web.StreamResponse:
        return await fake_media.transcription(self, request)

    async def _image_form(self, request: web.Request) -> web.Response:
        return await fake_media.image_form(self, request)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body, how = await self._record(request)
        return await fake_media.speech(self, request, body, how)

    async def _image_generation(self, request: web.Request) -> web.Response:
        body, how = await self._record(request)
        return fake_media.images(body if isinstance(body, dict) else {}, how)

    async def _admin(self, request: web.Request) -> web.Response:
        self.admin_hits.append(f"{request.method} {request.path_qs}")
        return web.json_response({"error": "admin route reached"}, status=200)


def openai_usage(prompt: int, completion: int) -> dict[str, Any]:
    """A chat or completions `usage` as api.openai.com sends it, with its details."""
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def openai_error(how: Behaviour) -> web.Response:
    """An error as api.openai.com sends it: the error object with all four fields, and on
    a 429 the rate-limit headers its SDKs back off by (a 429 for requests per minute)."""
    rate_limited = how.status == 429
    defaults = _OPENAI_ERRORS.get(how.status, _OPENAI_ERRORS[500 if how.status >= 500 else 400])
    message, kind, code = defaults
    error = {"message": how.error_message or message, "type": how.error_type or kind,
             "param": None, "code": how.error_code or code}
    headers = dict(_RATE_LIMIT_HEADERS) if rate_limited else {}
    if how.retry_after is not None:
        headers["retry-after"] = how.retry_after
    if how.retry_after_ms is not None:
        headers["retry-after-ms"] = how.retry_after_ms
    headers.update(how.headers or {})
    return web.json_response({"error": error}, status=how.status, headers=headers)


# (message, type, code) of api.openai.com's errors, by status.
_OPENAI_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided: sk-fake***. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_request_error",
          "invalid_api_key"),
    403: ("You are not allowed to sample from this model", "invalid_request_error", None),
    404: ("The model `m-fake` does not exist or you do not have access to it.",
          "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for m-fake in organization org-fake on requests per min (RPM): "
          "Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
          "https://platform.openai.com/account/rate-limits to learn more.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    503: ("The engine is currently overloaded, please try again later", "server_error", None),
}
_RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "3",
    "x-ratelimit-limit-tokens": "40000",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-remaining-tokens": "39970",
    "x-ratelimit-reset-requests": "20s",
    "x-ratelimit-reset-tokens": "45ms",
}


_GARBAGE = b"data: {\"choices\": [{\"delta\": {\"cont"
"""A chunk broken off mid-JSON, as `garbage_after_chunks` sends it before its reset."""


MOST_CHOICES = 128
"""The largest `n` OpenAI takes."""


def _too_many_choices(body: Any) -> web.Response | None:
    """OpenAI's 400 for an `n` above MOST_CHOICES (and a fake that made them all would
    take the machine's memory for n = 10**9)."""
    n = body.get("n") if isinstance(body, dict) else None
    if not isinstance(n, int) or isinstance(n, bool) or n <= MOST_CHOICES:
        return None
    message = (f"Invalid 'n': integer above maximum value. Expected a value <= {MOST_CHOICES},"
               f" but got {n} instead.")
    return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                        "param": "n", "code": "integer_above_max_value"}},
                             status=400)


def _choice_count(body: dict[str, Any], legacy: bool) -> int:
    """How many choices OpenAI answers: `n` (1 unless given), for each prompt of a legacy
    completion given a list of them (a list of token ids is one prompt), indexed in turn."""
    n = body.get("n")
    each = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    prompt = body.get("prompt") if legacy else None
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return each * len(prompt)
    return each


def _choice(legacy: bool, text: str, finish: str | None, index: int = 0) -> dict[str, Any]:
    """A whole answer's choice: a legacy completion's `text`, or a chat `message`."""
    if legacy:
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
    return {"index": index, "message": {"role": "assistant", "content": text},
            "logprobs": None, "finish_reason": finish}


def _chunk_choice(legacy: bool, text: str, finish: str | None, index: int = 0) -> dict[str, Any]:
    """A streamed chunk's choice: a legacy completion's `text`, or a chat `delta`."""
    if legacy:
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
    return {"index": index, "delta": {"content": text} if text else {}, "logprobs": None,
            "finish_reason": finish}


@contextlib.asynccontextmanager
async def serving_fake() -> AsyncIterator[tuple[FakeUpstream, str]]:
    """A fake upstream on a loopback port, and its URL; handlers whose client left are
    cancelled, as a real server's are."""
    fake = FakeUpstream()
    server = TestServer(fake.make_app(), host="127.0.0.1", handler_cancellation=True)
    await server.start_server()
    try:
        yield fake, f"http://127.0.0.1:{server.port}"
    finally:
        fake.abort_stalled()
        await server.close()
