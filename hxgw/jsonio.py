"""JSON in and out of the hot path, through orjson.

Every proxied body is parsed once for routing and re-encoded once per model
it is sent to; orjson does both several times faster than the standard
library, which is why it is a dependency.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError
EncodeError = orjson.JSONEncodeError

# orjson's own functions, not wrappers around them: a Python call fewer per use.
loads: Callable[[bytes | str], Any] = orjson.loads
dumps: Callable[[Any], bytes] = orjson.dumps

# orjson reads an integer beyond 64 bits as a float (2**64 as 1.8446744073709552e+19, a
# client's seed or id changed in the body sent on), and writes none. Such an integer
# has 19 digits or more: only a body with a run of as many digits is read again, by
# the standard library, which keeps integers whole. (A translation and a search of
# bytes; a regular expression took twenty times orjson's parse.)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19
_TOO_WIDE = "Integer exceeds 64-bit range"


def loads_exact(data: bytes) -> Any:
    """`data` parsed as `loads` does (and refused as strictly: orjson reads it first),
    but with every integer as written."""
    value = orjson.loads(data)
    if _LONG_RUN in data.translate(_DIGITS_AS_ZERO):
        value = json.loads(data)
    return value


def dumps_exact(value: Any) -> bytes:
    """`value` encoded as `dumps` does, or by the standard library when it holds an
    integer orjson cannot write (one `loads_exact` read)."""
    try:
        return orjson.dumps(value)
    except EncodeError as exc:
        if str(exc) != _TOO_WIDE:
            raise
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except RecursionError:
        raise EncodeError("nested too deeply") from None
