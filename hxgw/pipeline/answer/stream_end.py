"""How a relayed event stream's end is recognised: its API's final event (`[DONE]`,
`message_stop`, `response.completed`), by its `event:` line or its data object's `type`,
the upstream's own error event, and the choices that said why they stopped. Read on
whole lines only (pipeline.answer.lines), at a line's start, never inside a model's text.
"""

from __future__ import annotations

from dataclasses import dataclass

from hxgw.endpoints import BY_ID, PROXIED, Endpoint, StreamEnd
from hxgw.pipeline.answer.lines import lines_end
from hxgw.pipeline.answer.opening import ERROR_LINES, FAILED, event_name


def _named(*names: bytes) -> tuple[bytes, ...]:
    """The `event:` lines of events named `names`."""
    return tuple(prefix + name for name in names for prefix in (b"event: ", b"event:"))


def _typed(*names: bytes) -> tuple[bytes, ...]:
    """The same events by their data object's `type`, wherever it stands in the object (for
    an upstream that sends no event lines): only JSON's own quotes are bare, never those
    of a model's text. A client's own `metadata`, which a Responses stream echoes, may
    hold one too: a line found by it is read to be sure (`_typed_end`)."""
    return tuple(b'"type":' + space + b'"' + name + b'"' for name in names for space in (b"", b" "))


def _line_starts(starts: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """`starts`, and each as it stands after a line's end (LF or CR): what `_has_line`
    looks for in a block of whole lines."""
    return starts, tuple(end + start for start in starts for end in (b"\n", b"\r"))


def _has_line(block: bytes, starts: tuple[tuple[bytes, ...], tuple[bytes, ...]]) -> bool:
    """Whether a block of whole lines has a line that begins with one of `starts` (made
    by `_line_starts`): at a line's start only, as a model's text is inside JSON strings,
    where no line can start."""
    first, within = starts
    return block.startswith(first) or any(line in block for line in within)


_SAID_DONE = (b"data: [DONE]", b"data:[DONE]")
_DONE_LINE = _line_starts(_SAID_DONE)


@dataclass(frozen=True, slots=True)
class Final:
    """What to look for in a stream for its end (an endpoint's StreamEnd)."""

    names: tuple[bytes, ...]
    """The final events' names."""
    lines: tuple[tuple[bytes, ...], tuple[bytes, ...]]
    """How the line that ends a whole stream begins, for `_has_line`: an `event:` line
    naming a final event, `[DONE]` where it ends one, or the upstream's own error."""
    marks: tuple[bytes, ...]
    """The final events named by their data object's `type` (`_typed`)."""
    typed_first: tuple[bytes, ...]
    """How a data line starts whose object's first member is a final event's `type`,
    as OpenAI writes them: the object's own, even in a line too long to be read whole."""
    failures: tuple[bytes, ...]
    """How the line of a final event that says the stream failed begins: the upstream's
    own error, or a final event of FAILED (`response.failed`), by its name or its data
    object's first member (`failed_upstream` reads a `type` further in)."""

    @classmethod
    def of(cls, end: StreamEnd) -> Final:
        # The upstream's own error ends OpenAI's streams, as `event: error` (among its
        # events) or as a data object; not Anthropic's, whose events all have names: a
        # nameless `data: {"error"` (LiteLLM's, from a broken stream) is no end of it,
        # and the client must get the gateway's error event.
        lines = (*_named(*end.events), *((*_SAID_DONE, *ERROR_LINES) if end.done else ()))
        first = _typed_first(*end.events)
        failed = [name for name in end.events if name in FAILED]
        failures = (*ERROR_LINES, *_named(*failed), *_typed_first(*failed))
        return cls(end.events, _line_starts(lines), _typed(*end.events), first, failures)


def _typed_first(*names: bytes) -> tuple[bytes, ...]:
    """How a data line starts whose object's first member is the `type` of one of `names`."""
    return tuple(data + b"{" + mark for data in (b"data:", b"data: ") for mark in _typed(*names))


FINAL = {e: Final.of(e.stream_end) for e in (*PROXIED, *BY_ID) if e.stream_end is not None}
"""Each streaming route's; a route with none is relayed to its end, however it ends."""


def ends_stream(block: bytes, endpoint: Endpoint) -> bool:
    """Whether a block of whole lines holds the event that ends a stream of `endpoint`
    (one of those with a StreamEnd)."""
    final = FINAL[endpoint]
    return _has_line(block, final.lines) or _typed_end(block, final)


def through_final(block: bytes, final: Final) -> bytes:
    """`block` to the end of the line that ends the stream: what follows it (an error
    event past the whole answer) is no failure of the model's. Whole when that line is
    not found whole in `block` (a line too long to be read whole, passed on in pieces)."""
    found = [
        at for at in (_first_line(block, final.lines), _typed_line(block, final)) if at is not None
    ]
    if not found:
        return block
    at = min(found)  # the first of them: a nameless final event, then `[DONE]` or an error
    end = _line_end(block, at)
    return block if end is None else block[:end]


def _first_line(block: bytes, starts: tuple[tuple[bytes, ...], tuple[bytes, ...]]) -> int | None:
    """Where the first line that begins with one of `starts` (`_line_starts`) begins."""
    first, within = starts
    if block.startswith(first):
        return 0
    found = [i for start in within if (i := block.find(start)) >= 0]
    return min(found) + 1 if found else None


def _typed_line(block: bytes, final: Final) -> int | None:
    """Where the first data line whose object's own `type` names a final event begins."""
    if not final.marks or not any(mark in block for mark in final.marks):
        return None
    at = 0
    for line in block.splitlines(keepends=True):
        if _typed_final(line.rstrip(b"\r\n"), final):
            return at
        at += len(line)
    return None


def _typed_final(line: bytes, final: Final) -> bool:
    """Whether a data line's object's own `type` names a final event. The mark is only
    a hint (it may be inside the object): a line that holds one is read."""
    if not line.startswith(b"data:") or not any(mark in line for mark in final.marks):
        return False
    return line.startswith(final.typed_first) or event_name([line]) in final.names


def final_event_end(block: bytes, through: bytes) -> int | None:
    """Where, in `block`, the final event whose line ends `through` (`through_final`)
    ends: just past the blank line after it; None when it does not end in `block`."""
    if len(through) >= len(block):
        return None
    return event_end(block, _past_line_end(block, len(through)))


def done_event_end(block: bytes) -> int | None:
    """Where, in `block`, the `[DONE]` event ends (`said_done`); None when it does not."""
    at = _first_line(block, _DONE_LINE)
    end = None if at is None else _line_end(block, at)
    return None if end is None else event_end(block, _past_line_end(block, end))


def event_end(block: bytes, at: int = 0) -> int | None:
    """Just past the first blank line of `block` from `at` (a line's start) on: where the
    event under way there ends; None when it does not end in `block`."""
    while at < len(block):
        end = _line_end(block, at)
        if end is None:
            return None
        after = _past_line_end(block, end)
        if end == at:
            return after
        at = after
    return None


def _line_end(block: bytes, at: int) -> int | None:
    """Where the line that runs at `at` ends (its LF or CR); None when not in `block`."""
    ends = [i for i in (block.find(b"\n", at), block.find(b"\r", at)) if i >= 0]
    return min(ends) if ends else None


def _past_line_end(block: bytes, end: int) -> int:
    """Past the line end at `end`: a CRLF is one."""
    return end + 2 if block.startswith(b"\r\n", end) else end + 1


def named_alone(through: bytes, block: bytes) -> bool:
    """Whether the line that ends the stream (`through`: `block` up to its end) is the
    final event's `event:` line, with no data line after it in `block`: its data, which
    the SDKs read the whole answer from, comes in a later read."""
    line = through[lines_end(through) :]
    return line.startswith(b"event:") and not data_lines(block[len(through) :])


def _typed_end(block: bytes, final: Final) -> bool:
    """Whether a data line's own `type` names a final event (`_typed_final`)."""
    return _typed_line(block, final) is not None


def said_done(block: bytes) -> bool:
    """Whether a block of whole lines holds `data: [DONE]`, at a line's start."""
    return _has_line(block, _DONE_LINE)


def failed_upstream(through: bytes, final: Final) -> bool:
    """Whether the final event, whose line ends `through` (`through_final`), says the
    stream failed: an error of the upstream's own, or a `response.failed`, by the line's
    start or its object's own `type` (a `"type":"error"` further in may be the client's
    own `metadata`, which a Responses stream echoes)."""
    line = through[lines_end(through) :]
    if line.startswith(final.failures):
        return True
    return _typed_final(line, final) and event_name([line]) in FAILED


def finished_choices(block: bytes) -> int:
    """How many chat or completion choices in a block of whole lines say why they stopped
    (a `finish_reason` that is a string, not null)."""
    return block.count(b'"finish_reason":"') + block.count(b'"finish_reason": "')


def data_lines(block: bytes) -> int:
    """How many `data:` lines a block of whole lines holds (not `data:` quoted in their
    text, as in a model's answer about data: URLs)."""
    starts = block.count(b"\ndata:") + block.count(b"\rdata:")
    return starts + block.startswith(b"data:")
