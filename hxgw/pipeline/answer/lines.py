"""An upstream's event stream cut into blocks of whole lines (hxgw.pipeline.answer.events
relays them): the line a read leaves unfinished is held until its end comes, and what
ends the last event relayed is worked out when the gateway must end it.

SSE lines end with LF, CRLF or a lone CR (the WHATWG spec takes all three).
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_HELD_LINE = 1024 * 1024
"""The longest unfinished line held back while waiting for its end: no line is this
long, so past it what is held is passed through."""


class HeldLine:
    """The unfinished line at the end of what was read so far. Each read is searched
    once, not with what is held before it: an upstream that sends a long line a few
    bytes a read must not make the gateway search the held bytes again on each (a
    1 MiB line a byte at a time had taken minutes of the loop)."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def __bool__(self) -> bool:
        return self._size > 0

    def whole_lines(self, chunk: bytes) -> bytes:
        """The lines that `chunk` ends, with the start of the first held before it;
        b"" when it ends none. The rest of `chunk` is held."""
        cut = lines_end(chunk)
        if not cut:
            if self._size + len(chunk) <= MAX_HELD_LINE:
                if chunk:
                    self._parts.append(chunk)
                    self._size += len(chunk)
                return b""
            cut = len(chunk)  # no line is this long: pass it through rather than hold it
        if self._parts:
            cut += self._size
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts.clear()
        if cut == len(chunk):
            self._size = 0
            return chunk
        self._parts.append(chunk[cut:])
        self._size = len(chunk) - cut
        return chunk[:cut]


def rest_of_end(tail: bytes, held: HeldLine, chunk: bytes) -> bytes:
    """What of a read that comes after a stream's end (the relayed stream's last four bytes
    are `tail`) is still part of it: the LF of a CRLF whose CR ended it (a lone CR is a
    line's end to the spec, not to every client), nothing else."""
    return b"\n" if tail.endswith(b"\r") and chunk.startswith(b"\n") and not held else b""


def lines_end(data: bytes) -> int:
    """Where the whole lines of `data` end: after its last LF or CR; 0 when it ends none."""
    return max(data.rfind(b"\n"), data.rfind(b"\r")) + 1


def closer(tail: bytes) -> bytes:
    """What ends the event the relayed stream leaves open, by its last four bytes: nothing
    at an event's end (or before any line); else one more line end, or two after a CR
    (which may be the first half of a CRLF). Judged on the stream, not on the last read:
    a read may hold only the LF of a CRLF, which ends a line, not an event, or only the
    CR of a blank line, after which one more line end is a blank line too many."""
    text = tail.rstrip(b"\r\n")
    ends = line_ends(tail[len(text) :])
    if not text or ends >= 2:
        return b""
    return b"\n" if ends == 1 and tail.endswith(b"\n") else b"\n\n"


def open_closer(tail: bytes, block: bytes) -> bytes:
    """`closer`, for the stream whose last block of lines relayed was `block`; but an
    event left open with no `data:` line yet (its `event:` line alone) is not ended as an
    event, only its line: dispatched with no data, the openai SDK parses it as JSON and
    fails (the spec drops it). The error event's own `event:` line then names it."""
    ends = closer(tail)
    if ends and not _open_event_has_data(block):
        return ends[:-1]  # the line's end, not the blank line after it
    return ends


def _open_event_has_data(block: bytes) -> bool:
    """Whether the event a block of lines leaves open has a `data:` line in it; one that
    began in an earlier block is taken to, as nearly all do."""
    start = max(block.rfind(b"\n\n"), block.rfind(b"\r\r"), block.rfind(b"\r\n\r\n"))
    if start < 0 and not block.startswith((b"event:", b"id:", b":")):
        return True  # a data line, or the rest of an event an earlier block began
    rest = block[max(start, 0) :]
    return rest.startswith(b"data:") or b"\ndata:" in rest or b"\rdata:" in rest


def line_ends(run: bytes) -> int:
    """How many line ends a run of CRs and LFs holds: a CRLF is one."""
    return run.count(b"\r") + run.count(b"\n") - run.count(b"\r\n")


def data_line(lines: Iterable[bytes]) -> bytes | None:
    """The first `data:` line of an event's (or a body's) lines; None when it has none."""
    return next((line for line in lines if line.startswith(b"data:")), None)
