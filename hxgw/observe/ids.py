"""Request ids: 128 random bits each, as hex.

os.urandom per id is a getrandom syscall per request; the same randomness
read a few kilobytes at a time costs one per 128 ids.
"""

from __future__ import annotations

import os

_ID_BYTES = 16
_BATCH = 128


class RequestIds:
    __slots__ = ("_hex", "_next")

    def __init__(self) -> None:
        self._hex = ""
        self._next = 0

    def new(self) -> str:
        start = self._next
        if start >= len(self._hex):
            self._hex = os.urandom(_ID_BYTES * _BATCH).hex()
            start = 0
        self._next = start + 2 * _ID_BYTES
        return self._hex[start : self._next]
