"""Structured logging: one event per line, logfmt or JSON, journald-aware.

Under systemd, stderr is a journal stream (`JOURNAL_STREAM` names it) and
each line carries a `<N>` syslog priority prefix, so `journalctl -p err`
filters by level; journald adds its own timestamps there. Elsewhere lines get
an ISO timestamp instead. aiohttp's and asyncio's own stdlib log records are
rendered the same way so that no multi-line traceback reaches the journal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# syslog priorities, as journald reads them from a `<N>` line prefix.
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}


def on_journal(stream: TextIO) -> bool:
    """True when `stream` is the journal stream systemd connected us to."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


_PLAIN = re.compile(r'[^ ="\\\n\r\t]+')


def _logfmt_value(value: Any) -> str:
    if type(value) is int or type(value) is float:
        return str(value)  # the access line's numbers: the hot path
    if isinstance(value, (list, tuple)):
        value = "; ".join(map(str, value))
    text = value if isinstance(value, str) else str(value)
    if _PLAIN.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


class Renderer:
    """`EVENT key=value ...` (logfmt) or one JSON object; None values are left out."""

    # Names, words and numbers-as-text repeat from line to line; their logfmt form
    # is kept rather than matched again. Cleared when full: unique values pass through.
    KNOWN_LIMIT = 4096

    def __init__(self, fmt: str, journal: bool) -> None:
        self.json = fmt == "json"
        self.journal = journal
        self._known: dict[str, str] = {}

    def __call__(self, _: WrappedLogger, method: str, event: EventDict) -> str:
        level = event.pop("level", method)
        if self.journal:
            event.pop("timestamp", None)
        if self.json:
            event["level"] = level
            clean = {k: v for k, v in event.items() if v is not None}
            prefix = f"<{PRIORITIES.get(level, 6)}>" if self.journal else ""
            return prefix + orjson.dumps(clean, default=str).decode()
        message = str(event.pop("event", ""))
        return self.logfmt(level, message, event.pop("timestamp", None), event)

    def logfmt(
        self, level: str, message: str, timestamp: str | None, fields: Mapping[str, Any]
    ) -> str:
        """One logfmt line; the journal's priority prefix replaces the timestamp there."""
        if "\n" in message or "\r" in message:
            message = _logfmt_value(message)
        if self.journal:
            head = f"<{PRIORITIES.get(level, 6)}>{level} {message}"
        else:
            head = f"{timestamp} {level} {message}" if timestamp else f"{level} {message}"
        parts = [head]
        known = self._known
        # Numbers and already-seen words are most of an access line: they skip _value.
        for key, value in fields.items():
            kind = type(value)
            if kind is int or kind is float:
                parts.append(f"{key}={value}")
            elif kind is str and (text := known.get(value)) is not None:
                parts.append(f"{key}={text}")
            elif value is not None:
                parts.append(f"{key}={self._value(value)}")
        return " ".join(parts)

    def _value(self, value: Any) -> str:
        if type(value) is not str:
            return _logfmt_value(value)
        known = self._known.get(value)
        if known is None:
            if len(self._known) >= self.KNOWN_LIMIT:
                self._known.clear()
            known = self._known[value] = _logfmt_value(value)
        return known


class AccessLog:
    """The access line's own way out: rendered like every other line, but without
    structlog's processor chain, and written once per event-loop turn.

    Why: it is the one line per request, and going through the chain (context
    merge, timestamp via datetime, a flushed write each) cost a tenth of the
    gateway's CPU per request. Batching keeps the lines in order; under load
    several requests that end in the same turn share one write."""

    def __init__(
        self, renderer: Renderer, stream: TextIO, *, stamped: bool, enabled: bool = True
    ) -> None:
        self.renderer = renderer
        self.enabled = enabled
        self.stream = stream
        self.stamped = stamped
        self.worker = os.environ.get("HX_WORKER")
        self._pending: list[str] = []
        self._second = -1
        self._second_text = ""

    @classmethod
    def plain(cls) -> AccessLog:
        """logfmt lines on stderr: the access log of a gateway no one configured."""
        return cls(Renderer("kv", journal=False), sys.stderr, stamped=True)

    def write(self, message: str, request_id: str, fields: dict[str, Any]) -> None:
        """One access line; `fields` becomes part of it (the caller's dict, not copied)."""
        if not self.enabled:
            return
        stamp = self._timestamp() if self.stamped else None
        if self.renderer.json:
            fields["request_id"] = request_id
            if self.worker:
                fields["worker"] = self.worker
            event = {"event": message, **fields, "level": "info", "timestamp": stamp}
            line = self.renderer(None, "info", event)
        else:
            # The id is rendered apart: each is new, and would only churn the renderer's
            # cache of words it has seen.
            line = self.renderer.logfmt("info", message, stamp, fields)
            line += f" request_id={_logfmt_value(request_id)}"
            if self.worker:
                line += f" worker={_logfmt_value(self.worker)}"
        self._pending.append(line)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a test, a shutdown): write now
                self.flush()

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
        return f"{self._second_text}.{int((now - second) * 1e6):06d}Z"


def configure(level: str = "info", fmt: str = "kv", stream: TextIO | None = None) -> AccessLog:
    """Set up structlog and route stdlib logging (aiohttp, asyncio) through the same renderer;
    returns the access log that writes the same way."""
    stream = stream or sys.stderr
    journal = on_journal(stream)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if worker := os.environ.get("HX_WORKER"):
        shared.append(lambda _logger, _method, event: {**event, "worker": worker})
    if not journal:
        shared.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    shared.append(structlog.processors.format_exc_info)
    renderer = Renderer(fmt, journal)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(LEVELS[level], logging.INFO))
    return AccessLog(renderer, stream, stamped=not journal, enabled=LEVELS[level] <= logging.INFO)
