"""The usage chunk of a chat or completions stream, which the gateway asks the upstream
for (`stream_options.include_usage`) so that the ledger gets the upstream's count, and
keeps from a client that did not ask for it (hxgw.pipeline.answer.events): the chunk itself, or
the `usage` of one that says more (some upstreams put it on the finish chunk)."""

from __future__ import annotations

import re
from typing import Any

from hxgw import jsonio
from hxgw.pipeline.answer.lines import data_line, line_ends

# An SSE event and the blank line that ends it.
# An event ends with an empty line; a line ends with CRLF, LF or a lone CR.
_EVENT = re.compile(rb".*?(?:(?:\r\n|\n|\r(?!\n)){2}|\Z)", re.DOTALL)


class HiddenUsage:
    """Takes the usage chunk out of one stream's blocks of whole lines. The blank line
    that ends it may come in a later read than its `data:` line (a read cut between two
    line ends, or a CRLF stream read a byte at a time): it goes with the chunk, or the
    client gets a blank line of its own, which a strict client's parser takes for the end
    of an event."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        # The line ends so far of a chunk taken out at a block's end, while it may go on.
        self._open: bytes | None = None

    def strip(self, block: bytes) -> bytes:
        if self._open is not None:
            taken = _rest_of_event(self._open, block)
            self._open = self._open + block if taken == len(block) else None
            block = block[taken:]
        if b'_tokens"' not in block or b'"usage"' not in block:
            return block
        block, self._open = _taken_out(block)
        return block


def _taken_out(block: bytes) -> tuple[bytes, bytes | None]:
    """`block` without its usage chunk (the one the gateway asked for and the client did
    not: OpenAI's has `choices: []`; LiteLLM's proxy repeats its choice with an empty
    delta and no finish, which says nothing either), and the line ends of that chunk when
    it was the block's last event (its blank line may be still to come)."""
    # A block may begin with the line end that closes the event before it (the previous
    # read stopped between its two newlines): that belongs to the event before.
    events = block.lstrip(b"\r\n")
    kept = [block[: len(block) - len(events)]]
    last: bytes | None = None
    for event in _EVENT.findall(events):
        found = _usage_chunk(event) if b'"usage"' in event else None
        if found is not None and _says_nothing(found[1].get("choices")):
            last = event[len(event.rstrip(b"\r\n")) :]
            continue
        if found is not None:  # its usage on a chunk that says more (its finish): cut out
            event = _without_usage(event, *found)
        if event:
            last = None
        kept.append(event)
    return b"".join(kept), last


def _without_usage(event: bytes, line: bytes, chunk: dict[str, Any]) -> bytes:
    """`event`, whose data `line` is `chunk`, without the chunk's usage; as it came when
    the chunk nests deeper than orjson writes (254 levels, where it reads 1024): the
    error had broken the stream off before its finish."""
    del chunk["usage"]
    try:
        return event.replace(line, b"data: " + jsonio.dumps(chunk), 1)
    except jsonio.EncodeError:
        return event


def _rest_of_event(run: bytes, block: bytes) -> int:
    """How many of `block`'s first bytes are line ends of an event whose line ends so far
    are `run`: up to its blank line, and the LF of a CRLF begun by its last CR."""
    taken = 0
    while taken < len(block) and block[taken] in b"\r\n":
        so_far = run + block[:taken]
        if line_ends(so_far) >= 2 and not (so_far.endswith(b"\r") and block[taken] == 10):
            break
        taken += 1
    return taken


def _usage_chunk(event: bytes) -> tuple[bytes, dict[str, Any]] | None:
    """The data line of an event whose chunk has a `usage` object, and that chunk."""
    line = data_line(event.splitlines())
    if line is None:
        return None
    try:
        chunk = jsonio.loads(line[5:])
    except jsonio.DecodeError:
        return None
    return (
        (line, chunk) if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict) else None
    )


def _says_nothing(choices: object) -> bool:
    """Whether a chunk's `choices` say nothing: none (missing, null or []), or each with
    no delta, text or finish."""
    return choices is None or (
        isinstance(choices, list)
        and all(
            isinstance(choice, dict)
            and not choice.get("delta")
            and not choice.get("text")  # a completions stream's
            and choice.get("finish_reason") is None
            for choice in choices
        )
    )
