"""The access line: one per answered request, written in the log's own format.

It reads like every other line, but is rendered from one format string rather
than by structlog's processor chain, and written once per event-loop turn.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from typing import Any, TextIO

from hxgw.memo import Memo
from hxgw.observe import log
from hxgw.observe.log import CONTROL, Renderer, logfmt_value
from hxgw.observe.workers import WORKER

_KnownParts = tuple[str, str, int, str | None, str | None, str | None, int, str]


# A path (decoded: %20 is a space) that could pass for more fields of the line, as in
# "/x status=200 key=master": the request line is quoted then, as a logfmt value.
_FORGING = re.compile(r'[ "\\]')


class AccessLog:
    """The access line's own way out: it reads like every other line, but is rendered
    in one format string rather than by structlog's processor chain, and written once
    per event-loop turn.

    Why: it is the one line per request. Through the chain (context merge, timestamp
    via datetime, a flushed write each) it cost a tenth of the gateway's CPU, and
    through the generic field loop still a seventh of its instructions. Batching
    keeps the lines in order; under load several requests that end in the same turn
    share one write."""

    def __init__(
        self, renderer: Renderer, stream: TextIO, *, stamped: bool, level: str = "info"
    ) -> None:
        self.renderer = renderer
        self.stream = stream
        self.stamped = stamped
        self.worker = os.environ.get(WORKER) or None
        # The lowest status written at the log's `level`: all at info, 5xx at warning.
        self.least = _LEAST_STATUS.get(level, 1000)
        # The line's start, unless it carries a timestamp.
        self._head = "<6>info " if renderer.journal else None if stamped else "info "
        self._warning = "<4>warning " if renderer.journal else None if stamped else "warning "
        self._worker = "" if self.worker is None else f" worker={renderer.word(self.worker)}"
        self._parts: Memo[_KnownParts, tuple[str, str]] = Memo(
            self._render_parts, Renderer.KNOWN_LIMIT
        )
        self._pending: list[str] = []
        self._second = -1
        self._second_text = ""

    @classmethod
    def plain(cls) -> AccessLog:
        """logfmt lines on stderr: the access log of a gateway no one configured."""
        return cls(Renderer("kv", journal=False), sys.stderr, stamped=True)

    def write(
        self,
        method: str,
        path: str,
        request_id: str,
        *,
        status: int,
        model: str | None,
        group: str | None,
        key: str | None,
        latency: float,
        ttfb: float | None,
        size: int,
        failovers: int,
        outcome: str,
        queued: float | None = None,
        tokens: tuple[int, int] | None = None,
        upstream_id: str | None = None,
    ) -> None:
        """One request's line; `latency`, `ttfb` and `queued` (the wait for a turn at a
        busy upstream, None when there was none) in seconds, written in milliseconds;
        `tokens` the prompt and completion tokens it used, None when it used none;
        `upstream_id` the upstream's id of the request it served (its text is the
        upstream's, so it is quoted where logfmt needs it).
        `request_id` must be logfmt-plain (the request id step admits no other): each
        id is new, and would only churn the cache of words. A 5xx is a warning, so that
        `journalctl -p warning` shows the answers that failed; a 429 is not: a key's
        limits refusing a burst are the gateway at work, and would bury the failures
        (an upstream's own 429 is logged at warning as it comes: `upstream error`), nor
        is a `/readyz` answered 503: a probe's, every few seconds, of an outage the
        readiness check logs once."""
        failed = status >= 500 and outcome != NOT_READY
        if status < self.least or (not failed and self.least >= 500):
            return
        if self.renderer.json:
            line = self._json_line(
                "warning" if failed else "info",
                f"{method} {path}",
                {
                    "status": status,
                    "model": model,
                    "group": group,
                    "key": key,
                    "latency_ms": round(latency * 1000, 2),
                    "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 2),
                    "queued_ms": None if queued is None else round(queued * 1000, 2),
                    "bytes": size,
                    "prompt_tokens": None if tokens is None else tokens[0],
                    "completion_tokens": None if tokens is None else tokens[1],
                    "failovers": failovers,
                    "outcome": outcome,
                    "request_id": request_id,
                    "upstream_request_id": upstream_id,
                    "worker": self.worker,
                },
            )
        else:
            # Formatting a value costs about 1k instructions: the parts that repeat from
            # request to request (all but the figures and the id) are kept rendered.
            parts = self._parts[method, path, status, model, group, key, failovers, outcome]
            if not failed:
                head = self._head or f"{self._timestamp()} info "
            else:
                head = self._warning or f"{self._timestamp()} warning "
            line = (
                f"{head}{parts[0]} latency_ms={_milliseconds(latency)}"
                f"{'' if ttfb is None else ' ttfb_ms=' + _milliseconds(ttfb)}"
                f"{'' if queued is None else ' queued_ms=' + _milliseconds(queued)}"
                f" bytes={size}"
                f"{'' if tokens is None else _tokens(tokens)}"
                f"{parts[1]} request_id={request_id}"
                f"{'' if upstream_id is None else _upstream_id(upstream_id)}{self._worker}"
            )
        self._pending.append(line)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a test, a shutdown): write now
                self.flush()

    def _render_parts(self, known: _KnownParts) -> tuple[str, str]:
        """The access line around its figures, in logfmt: the request line, status and
        names before them, failovers and outcome after. These come from the routes, the
        config and a few outcomes, so each combination is rendered once."""
        method, path, status, model, group, key, failovers, outcome = known
        word = self.renderer.word
        message = f"{method} {path}"
        if CONTROL.search(message) or _FORGING.search(path):
            message = logfmt_value(message)
        labels = "".join(
            f" {name}={word(value)}"
            for name, value in (("model", model), ("group", group), ("key", key))
            if value is not None
        )
        return (
            f"{message} status={status}{labels}",
            f" failovers={failovers} outcome={word(outcome)}",
        )

    def _json_line(self, level: str, message: str, fields: dict[str, Any]) -> str:
        stamp = self._timestamp() if self.stamped else None
        return self.renderer(None, level, {"event": message, **fields, "timestamp": stamp})

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def _timestamp(self) -> str:
        """What structlog's TimeStamper(fmt="iso", utc=True) writes, without a datetime."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # Zero-padded by a leading 1 cut off: a format spec (an f-string's :06d, or %06d)
        # is parsed on every call.
        return f"{self._second_text}.{str(1_000_000 + int((now - second) * 1e6))[1:]}Z"


NOT_READY = "not_ready"
"""The outcome of a `/readyz` answered 503."""
_LEAST_STATUS = {"debug": 0, "info": 0, "warning": 500}
"""The lowest status an access line is written for, by the log's level (none above it)."""


def _tokens(tokens: tuple[int, int]) -> str:
    return f" prompt_tokens={tokens[0]} completion_tokens={tokens[1]}"


def _milliseconds(seconds: float) -> str:
    """A duration as milliseconds with two decimals, as `f"{seconds * 1000:.2f}"` writes
    it, through integer formatting. Why: formatting a float runs CPython's dtoa and
    format-spec code, which nothing else on a request's path touches; measured with
    `make bench-ab`, the access line's two floats done this way cost 2.5% less CPU per
    request, for slightly more instructions (less code run per request, fewer cache
    misses, is the likely reason)."""
    hundredths = int(seconds * 100_000 + 0.5)
    return f"{hundredths // 100}.{_TWO_DIGITS[hundredths % 100]}"


# "00" to "99": a str's % operator parses its format on every call (2k instructions).
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))


def configure(level: str = "info", fmt: str = "kv", stream: TextIO | None = None) -> AccessLog:
    """Set up the process's logging (see `log.configure`), and return the access log
    that writes the same way."""
    stream = stream or sys.stderr
    renderer = log.configure(level, fmt, stream)
    return AccessLog(renderer, stream, stamped=not renderer.journal, level=level)


def _upstream_id(text: str) -> str:
    """The upstream's id of the request, as the line's last field but the worker's: its
    text is the upstream's, so it is quoted where logfmt needs it."""
    return " upstream_request_id=" + logfmt_value(text)
