"""An upstream's error answer as the client may be given it: read whole (up to
MAX_ANSWER), the gateway's own key for that upstream masked should it be quoted, and
its message, cut short, for logs and the gateway's own errors."""

from __future__ import annotations

import asyncio
from typing import Any

from hxgw import jsonio
from hxgw.config import Config, Model
from hxgw.errors import UpstreamAnswer
from hxgw.pipeline.sending import TransportError
from hxgw.pipeline.upstream_headers import passed_headers
from hxgw.upstream import UpstreamResponse

# An upstream's error body is passed on whole or not at all; OpenAI's are under 1 KiB.
MAX_ANSWER = 64 * 1024


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
    data = masked(data, secret)
    headers = passed_headers(response)
    headers["X-HX-Model"] = model.name
    return UpstreamAnswer(summary(data), answer_status=response.status, headers=headers, body=data)


def upstream_key(config: Config, model: Model) -> str | None:
    """The gateway's key for the model's upstream (None for one a reload removed): what
    an upstream's error must not show whole (`masked`)."""
    upstream = config.upstreams.get(model.upstream)
    return upstream.key if upstream is not None else None


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
    if error and "message" in error:
        return str(error["message"])[:300]
    try:
        parsed = jsonio.loads(data)
        message = parsed["error"]["message"] if isinstance(parsed.get("error"), dict) else parsed
        return str(message)[:300]
    except (jsonio.DecodeError, AttributeError, KeyError, TypeError):
        return data.decode("utf-8", "replace")[:300]
