"""How long an upstream asks to be waited for (`Retry-After`, in seconds or as a date,
and OpenAI's `retry-after-ms`): how long a model is spared after its 429, and the
wait the client is asked for when every candidate was busy."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

from hxgw.errors import UpstreamAnswer


def retry_seconds(value: str | None) -> int | None:
    """A Retry-After in whole seconds, if it is a sane wait to keep a model out for."""
    seconds = delay(value)
    if seconds is None:
        return None
    wait = math.ceil(seconds)
    return wait if 0 < wait <= 3600 else None


def delay(value: str | None) -> float | None:
    """A Retry-After in seconds or as an HTTP date (RFC 9110), as seconds from now."""
    if value is None:
        return None
    if value.isascii() and value.isdigit():  # not "²": str.isdigit() takes it, int() not
        # A wait past any sane one needs no more digits read (int() refuses 4300 of them).
        return int(value) if len(value) <= 10 else 1e10
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # a year past any C integer: overflow
        return None
    return when.timestamp() - time.time()


def shortest_wait(answers: list[UpstreamAnswer]) -> UpstreamAnswer:
    """The last answer as it came, but asking the client to wait only until the first
    candidate frees up: the gateway can serve the retry with that one."""
    last = answers[-1]
    waits = [wait for a in answers if (wait := wait_ms(a.headers)) is not None]
    if not waits:
        return last
    shortest = min(waits)
    headers = {k: v for k, v in last.headers.items() if k not in ("Retry-After", "retry-after-ms")}
    # Both say the same wait; a whole second is never shorter than the milliseconds.
    headers["Retry-After"] = str(math.ceil(shortest / 1000))
    headers["retry-after-ms"] = str(shortest)
    status = last.answer_status
    return UpstreamAnswer(last.message, answer_status=status, headers=headers, body=last.body)


SPARING = frozenset({429, 503, 529})
"""The statuses whose Retry-After keeps their model out for that long."""


def spared_for(headers: Mapping[str, str]) -> float | None:
    """How long a 429 asks its model to be spared, in seconds (its `retry-after-ms` or
    `Retry-After`), if that is a sane wait to keep a model out for."""
    wait = wait_ms(headers)
    return wait / 1000 if wait is not None and 0 < wait <= 3_600_000 else None


def wait_ms(headers: Mapping[str, str]) -> int | None:
    """The wait an upstream asked for, in milliseconds: `retry-after-ms` (OpenAI's, and
    what its SDKs read first), else `Retry-After`."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            wait = float(value)
        except ValueError:
            wait = math.nan
        if 0 <= wait < math.inf:
            return math.ceil(wait)
    seconds = delay(headers.get("Retry-After"))
    return None if seconds is None else max(0, math.ceil(seconds * 1000))
