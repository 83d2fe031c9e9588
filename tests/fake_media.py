"""Audio and images as the fake upstream answers them, in api.openai.com's shapes.

Transcriptions and translations answer per `response_format`: `json` (with a
token `usage`, as gpt-4o-transcribe reports it), `verbose_json` (segments and a
duration `usage`, as whisper-1), and `text`, `srt` and `vtt` as
`text/plain; charset=utf-8`. With `stream=true` a transcription is Server-Sent Events
as gpt-4o-transcribe sends them: a `transcript.text.delta` per word, then
`transcript.text.done` with the whole text and the usage; `data:` lines only, no
`[DONE]`. Speech answers `audio/mpeg` bytes in several
chunks, chunked, with a pause between them. Images answer `data` with
`b64_json` (the gpt-image models) or `url` (dall-e's default), and usage.

Forms are read with aiohttp's own multipart reader, part by part as the bytes
arrive: `FakeUpstream.upload_progress` counts file bytes received so far, so a
test can see the gateway stream an upload while its client is still sending.

An upload can be made to fail mid-way (`upload_faults`): for every upload to a path,
or for one upstream model's. A model's fault strikes only once its `model` field has
been read, as a real upstream knows the model no sooner: for a form that sends its file
first, that is after the whole file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

if TYPE_CHECKING:
    from tests.fake_upstream import Behaviour, FakeUpstream

TEXT = "Hello there from the fake upstream"
AUDIO = [b"ID3\x04\x00\x00\x00\x00\x00\x00", b"\xff\xfb\x90\x64" + b"\x00" * 400,
         b"\xff\xfb\x90\x64" + b"\x01" * 400, b"\xff\xfb\x90\x64" + b"\x02" * 400]
"""An MP3's ID3 header and three frames, sent one per chunk."""
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
FORM_ERRORS = (ValueError, HttpProcessingError, web.HTTPException)
"""What aiohttp's multipart reader raises for a form that is not one."""


def broken_form(exc: Exception) -> web.Response:
    """A form the upstream cannot parse: a 400 in OpenAI's shape, as api.openai.com says."""
    error = {"message": f"Could not parse multipart form: {exc}",
             "type": "invalid_request_error", "param": None, "code": None}
    return web.json_response({"error": error}, status=400)


async def read_form(fake: FakeUpstream, request: web.Request) -> tuple[dict[str, Any], Behaviour]:
    """The form's fields (files as {"filename", "content_type", "size"}), recorded; a
    model whose behaviour has an error status is refused as soon as its field is read,
    without reading the rest, as an upstream that refuses early does. A fault set for
    the model strikes once it has read that many file bytes and the model field,
    whichever comes last."""
    from tests.fake_upstream import Behaviour, Seen

    fields: dict[str, Any] = {}
    fake.upload_progress[request.path] = 0
    reader = await request.multipart()
    how = Behaviour()
    fault: UploadFault | None = None
    refused: Behaviour | None = None  # by the model's fault, the rest unread
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader)
        name = part.name or "?"
        if part.filename is None:
            value = (await part.read()).decode()
            fields.setdefault(name, value) if not name.endswith("[]") else fields.setdefault(
                name, []).append(value)
            if name == "model":
                how = fake.behaviours.get(value, Behaviour())
                fault = fake.upload_faults.get((request.path, value))
                if how.status >= 400 and how.early:
                    break
                if fault is not None and fake.upload_progress[request.path] >= fault[1]:
                    refused = await _act(fake, request, fault[0])
                    break
            continue
        size = 0
        while chunk := await part.read_chunk(65536):
            size += len(chunk)
            fake.upload_progress[request.path] += len(chunk)
            if fault is not None and fake.upload_progress[request.path] >= fault[1]:
                refused = await _act(fake, request, fault[0])
                break
        fields.setdefault(name, []).append(
            {"filename": part.filename, "content_type": part.headers.get("Content-Type"),
             "size": size})
        if refused is not None:
            break
    seen = Seen(request.path, dict(request.headers), fields, fields.get("model"),
                list(request.headers.items()))
    fake.requests.append(seen)
    fake.request_seen.set()
    return fields, refused or how


async def transcription(fake: FakeUpstream, request: web.Request) -> web.StreamResponse:
    from tests.fake_upstream import openai_error

    try:
        fields, how = await read_form(fake, request)
        if how.header_delay:
            await asyncio.sleep(how.header_delay)
        if how.status >= 400:
            return openai_error(how)
    except FORM_ERRORS as exc:
        return broken_form(exc)
    except BaseException:
        fake.cancelled.append(request.path)  # the gateway left mid-upload
        raise
    fake.finished.append(request.path)
    text = how.content
    task = "translate" if request.path.endswith("translations") else "transcribe"
    if fields.get("stream") == "true" and task == "transcribe":
        return await _transcript_events(request, text, how)
    match fields.get("response_format", "json"):
        case "text":
            return _text(text + "\n")
        case "srt":
            return _text(f"1\n00:00:00,000 --> 00:00:02,500\n{text}\n\n")
        case "vtt":
            return _text(f"WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n{text}\n\n")
        case "verbose_json":
            segment = {"id": 0, "seek": 0, "start": 0.0, "end": 2.5, "text": " " + text,
                       "tokens": [50364, 2425, 50489], "temperature": 0.0, "avg_logprob": -0.2,
                       "compression_ratio": 0.9, "no_speech_prob": 0.01}
            return web.json_response({"task": task, "language": "english", "duration": 2.5,
                                      "text": text, "segments": [segment],
                                      "usage": {"type": "duration", "seconds": 3}})
    usage = {"type": "tokens", "input_tokens": 14, "output_tokens": len(text.split()),
             "total_tokens": 14 + len(text.split()),
             "input_token_details": {"text_tokens": 0, "audio_tokens": 14}}
    return web.json_response({"text": text, "usage": usage})


async def _transcript_events(request: web.Request, text: str,
                             how: Behaviour) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    words = text.split(" ")
    for n, word in enumerate(words):
        if n == how.end_after_chunks:  # a clean end, before the final event
            await response.write_eof()
            return response
        delta = {"type": "transcript.text.delta", "delta": word if n == 0 else " " + word}
        await response.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
    usage = {"type": "tokens", "input_tokens": 14, "output_tokens": len(words),
             "total_tokens": 14 + len(words),
             "input_token_details": {"text_tokens": 0, "audio_tokens": 14}}
    done = {"type": "transcript.text.done", "text": text, "usage": usage}
    await response.write(b"data: " + json.dumps(done).encode() + b"\n\n")
    await response.write_eof()
    return response


def _text(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain", charset="utf-8")


async def speech(fake: FakeUpstream, request: web.Request, body: Any,
                 how: Behaviour) -> web.StreamResponse:
    """MP3 bytes as they are made: chunked, a pause between chunks (and, with a gate,
    after the first one until the test opens it)."""
    if how.status >= 400:
        from tests.fake_upstream import openai_error
        return openai_error(how)
    response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    fake.progress[request.path] = 0
    for i, chunk in enumerate(AUDIO):
        await response.write(chunk)
        fake.progress[request.path] = i + 1
        if i == 0 and how.gate is not None:
            await how.gate.wait()
        await asyncio.sleep(how.chunk_delay or 0.02)
    await response.write_eof()
    return response


def images(fields: dict[str, Any], how: Behaviour) -> web.Response:
    """An ImagesResponse: `n` images as `b64_json` (gpt-image models, and whoever asks
    for it) or `url`, with the token usage the gpt-image models report."""
    if how.status >= 400:
        from tests.fake_upstream import openai_error
        return openai_error(how)
    model = str(fields.get("model", ""))
    n = int(fields.get("n", 1))
    as_b64 = fields.get("response_format") == "b64_json" or model.startswith("gpt-image")
    data = [{"b64_json": PNG} if as_b64 else
            {"url": f"https://fake.example/img-{i}.png", "revised_prompt": fields.get("prompt")}
            for i in range(n)]
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if as_b64:
        answer["usage"] = {"total_tokens": 100, "input_tokens": 50, "output_tokens": 50,
                           "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}}
    return web.json_response(answer)


async def image_form(fake: FakeUpstream, request: web.Request) -> web.Response:
    try:
        fields, how = await read_form(fake, request)
    except FORM_ERRORS as exc:
        return broken_form(exc)
    except BaseException:
        fake.cancelled.append(request.path)
        raise
    fake.finished.append(request.path)
    return images(fields, how)


UPLOAD_PATHS = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations",
                          "/v1/images/edits", "/v1/images/variations", "/v1/files"})
UploadFault = tuple[str, int]
"""What an upload does after this many bytes: "reset" the connection, "stall" (stop
reading, answer nothing) or "refuse" it with a 413. Set for a path
(`upload_faults[path]`), it counts the body's bytes, whatever model the form names; for
one upstream model (`upload_faults[path, model]`), the file bytes of a form that names
it, and strikes no sooner than its `model` field is read."""
UploadFaults = dict[str | tuple[str, str], UploadFault]


def upload_faults(fake: FakeUpstream) -> Any:
    """A middleware for the upload routes: a fault set in `fake.upload_faults[path]`
    happens mid-upload (one set for a model happens in `read_form`). Every upload that
    reached the fake is kept in `fake.uploads_started`, and those whose connection the
    gateway dropped in `fake.uploads_cancelled`, faulty or not."""

    @web.middleware
    async def faults(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST" or request.path not in UPLOAD_PATHS:
            return await handler(request)
        fault = fake.upload_faults.get(request.path)
        fake.uploads_started.append(request.path)
        try:
            if fault is None:
                return await handler(request)
            return await _misbehave(fake, request, *fault)
        except asyncio.CancelledError:
            fake.uploads_cancelled.append(request.path)
            raise

    return faults


async def _misbehave(fake: FakeUpstream, request: web.Request, kind: str,
                     after: int) -> web.StreamResponse:
    from tests.fake_upstream import openai_error

    got = 0
    while got < after and (chunk := await request.content.readany()):
        got += len(chunk)
        fake.upload_progress[request.path] = got
    return openai_error(await _act(fake, request, kind))


async def _act(fake: FakeUpstream, request: web.Request, kind: str) -> Behaviour:
    """Do what an upload fault says; "refuse" returns the 413 to answer, the others
    never return (the gateway's leaving cancels them)."""
    from tests.fake_upstream import Behaviour

    if kind == "reset":
        assert request.transport is not None
        request.transport.abort()
    if kind == "stall":
        fake.stalled.append(request)  # its reading paused, it would not see a close
    if kind in ("reset", "stall"):
        await asyncio.sleep(3600)
    return Behaviour(status=413, error_message="Request entity too large: the file is over "
                     "the maximum size for this endpoint.")
