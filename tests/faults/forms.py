"""Uploads and Responses streams for the fault suite: forms sent on a raw socket (so a
test decides every byte, its pace and when to stop), and how each request ended.

`upload` writes the request in one task and reads the answer in another, so an answer
that comes while the client is still sending (an early 413, a 502 after the upstream
reset) is read, whatever the sending does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from tests.faults.conftest import gateway_models, gateway_routing
from tests.faults.harness import HANG_BOUND, Outcome, body_verdict, is_openai_error, sse_verdict
from tests.fixtures import Gateway

TRANSCRIPTIONS = "/v1/audio/transcriptions"
FILES = "/v1/files"
# The two upload routes each upload fault runs on: one rewrites its form's model field,
# the other passes its form as sent.
PATHS = [pytest.param(TRANSCRIPTIONS, id="transcription"), pytest.param(FILES, id="files")]
NAMES = {TRANSCRIPTIONS: "transcription", FILES: "file upload"}
BOUNDARY = "hxfault"
MiB = 1024 * 1024


def media_models() -> list[dict[str, Any]]:
    """The suite's models and one that transcribes (its upstream id `whisper-1`)."""
    return [*gateway_models(), {"name": "transcribe", "tier_score": 0.9, "specializations": [],
                                "upstream_model": "whisper-1",
                                "mode": "audio_transcription"}]


def media_routing() -> dict[str, Any]:
    routing = gateway_routing()
    routing["routing"]["groups"]["stt"] = ["transcribe"]
    return routing


def form_head(path: str, boundary: str = BOUNDARY) -> bytes:
    """A form's fields as the python SDK sends them (model or purpose first), up to the
    start of its file's bytes."""
    name, value, file_field = (("purpose", "batch", "file") if path == FILES
                               else ("model", "stt", "file"))
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()


def form_tail(boundary: str = BOUNDARY) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


def whole_form(path: str, size: int) -> bytes:
    return form_head(path) + b"\x01" * size + form_tail()


async def filler(size: int, block: int = 256 * 1024) -> AsyncIterator[bytes]:
    """`size` file bytes in blocks, made as they are sent."""
    piece = b"\x01" * block
    for at in range(0, size, block):
        yield piece[: min(block, size - at)]


def request_head(gateway: Gateway, path: str, length: int | None,
                 content_type: str | None = None) -> bytes:
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    kind = content_type if content_type is not None else (
        f"multipart/form-data; boundary={BOUNDARY}")
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
            f"Content-Type: {kind}\r\n{framing}\r\n\r\n").encode()


class Sent:
    """How many body bytes the client got into its socket."""

    bytes = 0


async def upload(
    gateway: Gateway,
    path: str,
    pieces: Iterable[bytes] | AsyncIterator[bytes],
    *,
    length: int | None,
    content_type: str | None = None,
    bound: float = HANG_BOUND,
    sent: Sent | None = None,
    leave_after: int | None = None,
) -> Outcome:
    """One upload on its own connection, its body chunked when `length` is None.
    With `leave_after`, the client aborts its connection once it sent that many body
    bytes (the outcome is then "ok" if it got that far). A connection closed without an
    answer is an Outcome "closed"."""
    sent = sent or Sent()
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    left = asyncio.Event()

    async def send() -> None:
        writer.write(request_head(gateway, path, length, content_type))
        async for piece in _aiter(pieces):
            if length is None:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if piece else b"")
            else:
                writer.write(piece)
            await writer.drain()
            sent.bytes += len(piece)
            if leave_after is not None and sent.bytes >= leave_after:
                writer.transport.abort()
                left.set()
                return
        if length is None:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        async with asyncio.timeout(bound):
            if leave_after is not None:
                await asyncio.wait({sender, asyncio.ensure_future(left.wait())},
                                   return_when=asyncio.FIRST_COMPLETED)
                return Outcome("ok" if left.is_set() else "unexpected",
                               detail="the client could not send its bytes")
            return await read_answer(reader)
    except TimeoutError:
        return Outcome("hang", detail=f"no answer within {bound}s, {sent.bytes} bytes sent")
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        writer.transport.abort()


async def _aiter(pieces: Iterable[bytes] | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if isinstance(pieces, AsyncIterator):
        async for piece in pieces:
            yield piece
    else:
        for piece in pieces:
            yield piece


async def read_answer(reader: asyncio.StreamReader) -> Outcome:
    """One HTTP answer with a Content-Length body, classified as the harness does."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        while head.startswith(b"HTTP/1.1 100 "):
            head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        return Outcome("closed", detail=f"closed without an answer: {exc!r}")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(headers.get("Content-Length", "0"))
    try:
        raw = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        return Outcome("unexpected", status, detail=f"answer cut: {exc!r}")
    kind, detail, error = body_verdict(status, raw)
    if kind == "unexpected" and status == 200 and raw.startswith(b"{"):
        kind, detail = "ok", ""  # a transcription or a file object, not a chat answer
    return Outcome(kind, status, raw.decode("utf-8", "replace"), detail, headers, error)


def clean_if(outcome: Outcome, *statuses: int, closed: bool = False) -> Outcome:
    """An outcome judged by the statuses a scenario allows (and, with `closed`, a
    connection closed without an answer)."""
    if outcome.kind == "hang":
        return outcome
    if outcome.kind == "closed":
        return Outcome("clean" if closed else "unexpected", detail=outcome.detail)
    if outcome.status in statuses and outcome.kind in ("clean", "ok"):
        return outcome
    return Outcome("unexpected", outcome.status, outcome.text,
                   f"HTTP {outcome.status}, wanted {statuses}: {outcome.text[:160]!r}")


def responses_verdict(text: str, *, strict_data: bool = True) -> tuple[str, str, Any]:
    """ok / clean / unexpected for a Responses stream: it ends with `response.completed`
    (it has no `[DONE]`), or with an error event after whole events."""
    last = text.rstrip("\n").rsplit("\n\n", 1)[-1]
    if last.startswith("event: response.completed\n") and text.endswith("\n\n"):
        return sse_verdict(text + "data: [DONE]\n\n", strict_data=strict_data)
    return sse_verdict(text, strict_data=strict_data)


def openai_error_of(text: str) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        payload = json.loads(text)
        if is_openai_error(payload):
            return payload["error"]
    return None
