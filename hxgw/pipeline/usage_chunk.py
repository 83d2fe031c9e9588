"""The usage chunk of a chat or completions stream, which the gateway asks the upstream
for (`stream_options.include_usage`) so that the ledger gets the upstream's count, and
keeps from a client that did not ask for it (hxgw.pipeline.events)."""

from __future__ import annotations

import re

from hxgw import jsonio

# An SSE event and the blank line that ends it.
# An event ends with an empty line; a line ends with CRLF, LF or a lone CR.
_EVENT = re.compile(rb".*?(?:(?:\r\n|\n|\r(?!\n)){2}|\Z)", re.DOTALL)


def without_usage_chunk(block: bytes) -> bytes:
    """`block`, whole SSE events, without the chunk that holds only the stream's usage:
    the one the gateway asked for and the client did not. OpenAI's has `choices: []`;
    LiteLLM's proxy repeats its choice with an empty delta and no finish (`choices:
    [{"index": 0, "delta": {}}]`), which says nothing either."""
    # A block may begin with the line end that closes the event before it (the previous
    # read stopped between its two newlines): that belongs to the event before.
    events = block.lstrip(b"\r\n")
    kept = [block[: len(block) - len(events)]]
    for event in _EVENT.findall(events):
        if b'"usage"' in event and _is_usage_chunk(event):
            continue
        kept.append(event)
    return b"".join(kept)


def line_ends(run: bytes) -> int:
    """How many line ends a run of CRs and LFs holds: a CRLF is one."""
    return run.count(b"\r") + run.count(b"\n") - run.count(b"\r\n")


def _is_usage_chunk(event: bytes) -> bool:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                chunk = jsonio.loads(line[5:])
            except jsonio.DecodeError:
                return False
            return (
                isinstance(chunk, dict)
                and isinstance(chunk.get("usage"), dict)
                and _says_nothing(chunk.get("choices"))
            )
    return False


def _says_nothing(choices: object) -> bool:
    return isinstance(choices, list) and all(
        isinstance(choice, dict)
        and not choice.get("delta")
        and not choice.get("text")  # a completions stream's
        and choice.get("finish_reason") is None
        for choice in choices
    )
