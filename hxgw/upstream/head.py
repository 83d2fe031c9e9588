"""Where an upstream response head ends in the bytes read so far, and whether it is an
interim (1xx) answer: what `ResponseReader` needs to collect a head whole before the
parser sees it (hxgw.upstream.reader)."""

from __future__ import annotations

HEAD_END = b"\r\n\r\n"


def head_end(buffer: bytearray, start: int) -> int:
    """Where the head in `buffer` ends, after its empty line; -1 until it has. Bare LFs
    count too: the parser refuses such a head at once, not after the first-byte timeout."""
    crlf = buffer.find(HEAD_END, start)
    # Only within the head: past it is the body, which may be long (and has no \n\n).
    lf = buffer.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buffer))
    if lf >= 0:
        return lf + 2
    return crlf + 4 if crlf >= 0 else -1


def is_interim(buffer: bytearray, at: int) -> bool:
    """Whether the head at `at` is an interim answer: 1xx, but 101 (a protocol switch,
    which the parser refuses)."""
    status = bytes(buffer[at + 9 : at + 13])  # three digits and what ends them
    return (
        buffer.startswith(b"HTTP/1.", at)
        and status[:1] == b"1"
        and status[:3].isdigit()
        and status[3:] in (b" ", b"\r", b"\n")
        and status[:3] != b"101"
    )
