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
the stream's first event (`data: {"error": ...}`, or `event: error`); Anthropic's may
send it right after `message_start` (an `overloaded_error`). The events that open a
stream before any of its answer (`message_start` and `ping`, Responses'
`response.created` and `.in_progress`, and the start of an empty block of text, as both
send one before its first delta) are held with the comments and looked past.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import NamedTuple

from hxgw import jsonio
from hxgw.pipeline.answer.lines import data_line, lines_end
from hxgw.upstream import UpstreamResponse

MAX_HELD = 64 * 1024
"""The most opening bytes held while waiting for the first event of the answer: past
them, the candidate counts as answered and they go to the client."""
PREAMBLE = frozenset({b"message_start", b"ping", b"response.created", b"response.in_progress"})
EMPTY_STARTS = {
    b"content_block_start": "content_block",
    b"response.output_item.added": "item",
    b"response.content_part.added": "part",
}
"""The events that start a block of the answer, each with the member that holds it: one
of text (or thinking, or a Responses message) with nothing in it yet opens the stream; a
tool call's names its tool, which is answer."""
_EMPTY_KINDS = frozenset({"text", "thinking", "message", "output_text"})
EVENT_STREAM = "text/event-stream"
ERROR_LINES = (b'data: {"error"', b'data:{"error"', b"event: error", b"event:error")
"""How the line of an upstream's own error event begins (OpenAI's and LiteLLM's data
object, or an event named `error`, Anthropic's and the Responses API's)."""
FAILED = frozenset({b"error", b"response.failed"})
"""The names of the events that say a stream failed: `error`, and a Responses stream's
`response.failed`."""


async def past_preamble(response: UpstreamResponse, first: bytes, within: float) -> bytes:
    """`first`, and what follows while it holds only comments and the events that open a
    stream, for at most `within` seconds."""
    held = bytearray(first)
    preamble = Preamble()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            more = first
            while more and len(held) < MAX_HELD and preamble.goes_on(more):
                more = await response.readany()
                held += more
    return bytes(held)


class Preamble:
    """A stream's opening judged as it arrives, each line once: an upstream that sends it
    a few bytes a read must not have all it sent searched again on each read (16 KiB of
    pings a byte at a time had taken 2 s of the loop).

    Lines end with LF, CRLF or a lone CR (the WHATWG spec takes all three); a read that
    ends with a CR may have cut a CRLF, whose LF then ends no line of its own."""

    __slots__ = ("_after_cr", "_event", "_line")

    def __init__(self) -> None:
        self._line = bytearray()
        """The line begun and not yet ended."""
        self._event: list[bytes] = []
        """The lines of the event begun and not yet ended, comments left out."""
        self._after_cr = False

    def goes_on(self, data: bytes) -> bool:
        """Whether every event ended so far, with `data`, only opens a stream: the last
        one begun may yet turn out either way."""
        if self._after_cr and data.startswith(b"\n"):
            data = data[1:]
        self._after_cr = data.endswith(b"\r")
        cut = lines_end(data)
        if not cut:
            self._line += data
            return True
        ended = (bytes(self._line) + data[:cut]).splitlines()
        self._line[:] = data[cut:]
        for line in ended:
            if not line:
                if self._event and not opens(self._event):
                    return False
                self._event = []
            elif not line.startswith(b":"):
                self._event.append(line)
        return True


def _events(data: bytes) -> tuple[list[list[bytes]], bool]:
    """The events of `data` as their lines, comments left out, and whether the last is
    whole (a blank line ended it)."""
    events: list[list[bytes]] = [[]]
    for line in data.splitlines():
        if line:
            if not line.startswith(b":"):
                events[-1].append(line)
        elif events[-1]:
            events.append([])
    whole = not events[-1] or data.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
    return [event for event in events if event], whole


def opens(event: list[bytes]) -> bool:
    """Whether an event (its lines, comments left out) only opens a stream: one of the
    PREAMBLE, or the start of an empty block of text (EMPTY_STARTS)."""
    name = event_name(event)
    if name in PREAMBLE:
        return True
    member = EMPTY_STARTS.get(name) if name is not None else None
    if member is None:
        return False
    block = _data(event).get(member)
    return (
        isinstance(block, dict)
        and jsonio.one_of(block.get("type"), _EMPTY_KINDS)
        and not any(block.get(kind) for kind in ("text", "thinking", "content"))
    )


def _data(event: list[bytes]) -> dict[str, object]:
    """An event's data object; {} when it has none."""
    data = data_line(event)
    with contextlib.suppress(jsonio.DecodeError):
        parsed = jsonio.loads(data[5:]) if data is not None else None
        return parsed if isinstance(parsed, dict) else {}
    return {}


def event_name(event: list[bytes]) -> bytes | None:
    """An event's name: its `event:` line's, or else its data object's `type`."""
    for line in event:
        if line.startswith(b"event:"):
            return line[6:].strip()
    kind = _data(event).get("type")
    return kind.encode() if isinstance(kind, str) else None


class OpeningError(NamedTuple):
    said: str
    overloaded: bool = False
    """Anthropic's `overloaded_error`: what its API answers with a 529 when it says so
    before the stream."""


def opening_error(first: bytes, ended: bool = False) -> OpeningError | None:
    """What the error event that opens a stream (past its preamble) says, or that the
    stream `ended` with `first` before any of its answer; None when it opens otherwise."""
    events, _ = _events(first)
    event = next((e for e in events if not opens(e)), None)
    if event is None and ended:
        return OpeningError("the upstream's stream ended before any of its answer")
    if event is None:
        return None
    data = data_line(event)
    parsed = None
    if data is not None and b'"error"' in data:
        with contextlib.suppress(jsonio.DecodeError):
            parsed = jsonio.loads(data[5:])
    parsed = parsed if isinstance(parsed, dict) else {}
    name = event_name(event)
    if name == b"response.failed" and isinstance(parsed.get("response"), dict):
        parsed = parsed["response"]  # the failed response, with its `error`
    # The SDKs raise on a data object with any `error` (OpenRouter's chunk names its id
    # and choices first), an `error` event, or a Responses stream's `response.failed`.
    if not (parsed.get("error") or event[0].startswith(ERROR_LINES) or name in FAILED):
        return None
    said = "the upstream's stream opened with an error event"
    error = parsed.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    overloaded = isinstance(error, dict) and error.get("type") == "overloaded_error"
    if isinstance(message, str) and message:
        said = f"{said}: {message[:200]}"
    return OpeningError(said, overloaded)
