"""A bounded memo of a one-argument function, read as a dict."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(dict[K, V]):
    """`memo[key]` is `compute(key)`, worked out once per key while at most `size` are kept.

    For the header names and values an upstream repeats on every response. Why not
    functools.lru_cache: for an argument that is not a str or an int (these are bytes,
    a new object each time) it builds and hashes a key tuple on every call; a hit here
    is one dict lookup. When full it starts over rather than track recency: the keys
    are a handful of spellings, and a peer sending endless new ones only makes it
    recompute."""

    __slots__ = ("_compute", "_size")

    def __init__(self, compute: Callable[[K], V], size: int) -> None:
        super().__init__()
        self._compute = compute
        self._size = size

    def __missing__(self, key: K) -> V:
        if len(self) >= self._size:
            self.clear()
        value = self[key] = self._compute(key)
        return value
