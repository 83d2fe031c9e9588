"""JSON in and out of the hot path, through orjson.

Every proxied body is parsed once for routing and re-encoded once per model
it is sent to; orjson does both several times faster than the standard
library, which is why it is a dependency.
"""

from __future__ import annotations

from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError
EncodeError = orjson.JSONEncodeError


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
