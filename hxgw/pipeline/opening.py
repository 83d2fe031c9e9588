"""How an upstream's event stream opens, read before the gateway commits to it: while
nothing has reached the client, a candidate that opens its stream with an error can
still be failed over.

Some upstreams send comment lines while a request waits in their queue (OpenRouter's
`: OPENROUTER PROCESSING`): they are no answer, so while another candidate remains the
first bytes are read past them before the candidate counts as answered, for at most half
of what is left of the first-byte wait. An upstream still only keeping the connection
alive by then is taken as answering (a queue may be long, a reasoning model slow to
start), not timed out and held against its model.

Other upstreams, LiteLLM's proxy among them, answer 200 and send a provider's failure as
the stream's first event (`data: {"error": ...}`, or `event: error`).
"""

from __future__ import annotations

import asyncio
import contextlib

from hxgw import jsonio
from hxgw.upstream import UpstreamResponse

MAX_COMMENTS = 64 * 1024
"""The most comment bytes held while waiting for the first event: past them, the
candidate counts as answered and they go to the client."""
_ERROR_LINES = (b'data: {"error"', b'data:{"error"', b"event: error", b"event:error")


async def past_comments(response: UpstreamResponse, first: bytes, within: float) -> bytes:
    """`first`, and what follows while it holds only comments and blank lines, for at
    most `within` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while first and len(first) < MAX_COMMENTS and _only_comments(first):
                more = await response.readany()
                if not more:
                    break
                first += more
    return first


def _only_comments(data: bytes) -> bool:
    return all(not line or line.startswith(b":") for line in data.splitlines())


def opening_error(first: bytes) -> str | None:
    """What the error event that opens a stream says; None when it opens otherwise."""
    lines = [line for line in first.splitlines() if line and not line.startswith(b":")]
    if not lines or not lines[0].startswith(_ERROR_LINES):
        return None
    said = "the upstream's stream opened with an error event"
    data = next((line for line in lines if line.startswith(b"data:")), None)
    try:
        error = jsonio.loads(data[5:]).get("error") if data is not None else None
    except (jsonio.DecodeError, AttributeError):
        return said
    message = error.get("message") if isinstance(error, dict) else error
    return f"{said}: {message[:200]}" if isinstance(message, str) and message else said
