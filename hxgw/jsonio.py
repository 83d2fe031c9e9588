"""JSON in and out of the hot path, through orjson.

Every proxied body is parsed once for routing and re-encoded once per model
it is sent to; orjson does both several times faster than the standard
library, which is why it is a dependency.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Container
from typing import Any, TypeGuard

import orjson

DecodeError = orjson.JSONDecodeError
EncodeError = orjson.JSONEncodeError

# orjson's own functions, not wrappers around them: a Python call fewer per use.
loads: Callable[[bytes | str], Any] = orjson.loads
dumps: Callable[[Any], bytes] = orjson.dumps


def dumps_deep(value: Any) -> bytes:
    """`value` as JSON however deep `loads` read it (1024 levels), where orjson writes
    only 254: past them, the standard library's encoder, several times slower. For what
    the gateway writes again off the hot path that may hold what a client sent deeper than
    its body did: the files' and batches' answers (8 MiB at most; a list nests a batch's
    metadata two levels more, and one client's batch had made every key's list of them a
    500) and an upstream's error that echoes the input. EncodeError for what neither
    writes: an upstream may answer 1024 levels deep."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except RecursionError:
        # Past about 990 levels the standard library's encoder runs out of Python's
        # recursion limit: an error its callers can take, not a 500.
        raise EncodeError(f"nested deeper than {sys.getrecursionlimit()} levels") from None


def one_of(value: object, names: Container[str]) -> TypeGuard[str]:
    """Whether a value read from JSON is one of `names`: a list or an object where a word
    should be is none of them (looked up in a set or a dict, it raised TypeError)."""
    return isinstance(value, str) and value in names
