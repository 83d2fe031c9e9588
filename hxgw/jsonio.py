"""JSON in and out of the hot path, through orjson.

Every proxied body is parsed once for routing and re-encoded once per model
it is sent to; orjson does both several times faster than the standard
library, which is why it is a dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError
EncodeError = orjson.JSONEncodeError

# orjson's own functions, not wrappers around them: a Python call fewer per use.
loads: Callable[[bytes | str], Any] = orjson.loads
dumps: Callable[[Any], bytes] = orjson.dumps
