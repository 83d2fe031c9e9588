"""An upstream's error answer as the client may be given it: read whole (up to
MAX_ANSWER), decoded should the upstream have compressed it (despite the gateway's
Accept-Encoding: identity), the gateway's own key for that upstream masked should it be
quoted, and its message, cut short, for logs and the gateway's own errors."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from hxgw import jsonio
from hxgw.config import Config, Model
from hxgw.errors import UpstreamAnswer
from hxgw.pipeline.answer.upstream_headers import passed_headers
from hxgw.upstream import TransportError, UpstreamResponse

# An upstream's error body is passed on whole or not at all; OpenAI's are under 1 KiB.
MAX_ANSWER = 64 * 1024
DECODED = {"gzip": 31, "x-gzip": 31, "deflate": 15}
"""The codings an error is decoded from, each with its window bits as zlib reads it
(deflate: zlib-wrapped, as HTTP's is)."""


async def read_answer(
    response: UpstreamResponse, model: Model, first: bytes = b"", secret: str | None = None
) -> UpstreamAnswer | None:
    """The upstream's error response as the client may get it (after the `first` bytes
    read of it already), read briefly; None when it cannot be read whole (the message for
    logs is then missing too). The gateway's own key for that upstream (`secret`), should
    the answer quote it (a 401 that says which key it refused), is masked: the client,
    the gateway's own error and the log get only its last four characters."""
    try:
        async with asyncio.timeout(2):
            data = first + await response.read(MAX_ANSWER + 1 - len(first))
    except TransportError:
        return None
    finally:
        response.release()
    if len(data) > MAX_ANSWER:
        return None
    headers = passed_headers(response)
    coding = response.content_encoding
    if coding and (plain := decoded(data, coding)) is not None:
        data = plain
        del headers["Content-Encoding"]
    data = masked(data, secret)
    headers["X-HX-Model"] = model.name
    return UpstreamAnswer(summary(data), answer_status=response.status, headers=headers, body=data)


def upstream_key(config: Config, model: Model) -> str | None:
    """The gateway's key for the model's upstream (None for one a reload removed): what
    an upstream's error must not show whole (`masked`)."""
    upstream = config.upstreams.get(model.upstream)
    return upstream.key if upstream is not None else None


def decoded(body: bytes, coding: str) -> bytes | None:
    """An error body in `coding` (gzip or deflate) as it reads decoded, when it decodes
    whole to at most MAX_ANSWER bytes: a key it quotes can then be masked, and its words
    logged. None for another coding, a body cut short, one that does not decode, or one
    of several gzip members (which goes as it came, decoded by the client)."""
    bits = DECODED.get(coding)
    if bits is None:
        return None
    decoder = zlib.decompressobj(bits)
    try:
        plain = decoder.decompress(body, MAX_ANSWER + 1)
    except zlib.error:
        return None
    whole = decoder.eof and not decoder.unused_data  # one gzip member, nothing after it
    return plain if whole and len(plain) <= MAX_ANSWER else None


def masked(data: bytes, secret: str | None) -> bytes:
    """`data` with the gateway's key for an upstream (`secret`) cut to its last four
    characters, should an upstream's error quote it."""
    if secret and secret.encode() in data:
        return data.replace(secret.encode(), b"..." + secret[-4:].encode())
    return data


def error_of(body: bytes) -> dict[str, Any]:
    """The `error` object of an upstream's error body; {} when it has none."""
    try:
        error = jsonio.loads(body).get("error")
    except (jsonio.DecodeError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def summary(data: bytes, error: dict[str, Any] | None = None) -> str:
    """The upstream's own error message, cut short, for logs and the gateway's errors
    (from its `error` object when that was parsed already)."""
    try:
        if error and "message" in error:
            return said(error["message"])
        parsed = jsonio.loads(data)
        message = parsed["error"]["message"] if isinstance(parsed.get("error"), dict) else parsed
        return said(message)
    except (jsonio.DecodeError, AttributeError, KeyError, TypeError, RecursionError):
        return data.decode("utf-8", "replace")[:300]


def said(message: object) -> str:
    """What an upstream's parsed `message` says, cut short. RecursionError for one nested
    deeper than Python prints (orjson reads 1024 levels): the caller's to take."""
    return message[:300] if isinstance(message, str) else str(message)[:300]
