"""Structured logging: one event per line, logfmt or JSON, journald-aware.

Under systemd, stderr is a journal stream (`JOURNAL_STREAM` names it) and
each line carries a `<N>` syslog priority prefix, so `journalctl -p err`
filters by level; journald adds its own timestamps there. Elsewhere lines get
an ISO timestamp instead. aiohttp's and asyncio's own stdlib log records are
rendered the same way so that no multi-line traceback reaches the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from hxgw.memo import Memo
from hxgw.observe.workers import WORKER

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# syslog priorities, as journald reads them from a `<N>` line prefix.
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}


# The id of the request the current task serves: every line logged while serving it
# carries it. structlog's bind_contextvars does the same through a dict of variables
# and cost 1.5% of a request.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hxgw_request_id", default=None
)


def add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


# The task that says, while it does, what every worker would say alike: see said_once.
_SAID_ONCE: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "hxgw_said_once", default=None
)


def said_once() -> contextlib.AbstractContextManager[None]:
    """What the running task logs within: the config read, where the stores are, the
    capacity, a reload taken. Each of N workers reads the same files, so worker 0 says
    it for all of them and the others keep quiet: the journal has it once, not N times.
    A lone daemon, and a supervisor, say everything. Only that task's own lines: the
    tasks and callbacks it starts meanwhile (the server's, whose requests' warnings
    every worker must say) inherit the mark but are not the task it names."""
    return _told_by(_running_task())


def said_by_each() -> contextlib.AbstractContextManager[None]:
    """Within said_once, what only this worker can say (its own socket, say)."""
    return _told_by(None)


@contextlib.contextmanager
def _told_by(task: asyncio.Task[Any] | None) -> Iterator[None]:
    token = _SAID_ONCE.set(task)
    try:
        yield
    finally:
        _SAID_ONCE.reset(token)


def _running_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no loop runs in this thread
        return None


def _drop_said_once(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    teller = _SAID_ONCE.get()
    if teller is not None and teller is _running_task():
        raise structlog.DropEvent
    return event


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


_PLAIN = re.compile(r'[^ ="\\\x00-\x1f\x7f-\x9f\u2028\u2029]+')
# Control characters, written escaped: raw, an ESC drives the terminal of whoever reads
# the log, a NUL cuts the line short for some tools, U+2028 breaks it for others.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if char < "\xff" else f"\\u{ord(char):04x}")


def logfmt_value(value: Any) -> str:
    if type(value) is int or type(value) is float:
        return str(value)  # the commonest values: no pattern to match
    if isinstance(value, (list, tuple)):
        value = "; ".join(map(str, value))
    text = value if isinstance(value, str) else str(value)
    if _PLAIN.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + CONTROL.sub(_escape, escaped) + '"'


class Renderer:
    """`EVENT key=value ...` (logfmt) or one JSON object; None values are left out."""

    # Names, words and numbers-as-text repeat from line to line; their logfmt form
    # is kept rather than matched again. Cleared when full: unique values pass through.
    KNOWN_LIMIT = 4096

    def __init__(self, fmt: str, journal: bool) -> None:
        self.json = fmt == "json"
        self.journal = journal
        self._known: Memo[str, str] = Memo(logfmt_value, self.KNOWN_LIMIT)

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
        if CONTROL.search(message):
            message = logfmt_value(message)
        if self.journal:
            head = f"<{PRIORITIES.get(level, 6)}>{level} {message}"
        else:
            head = f"{timestamp} {level} {message}" if timestamp else f"{level} {message}"
        value = self._value
        parts = [f"{k}={value(v)}" for k, v in fields.items() if v is not None]
        return " ".join([head, *parts])

    def _value(self, value: Any) -> str:
        if type(value) is not str:
            return logfmt_value(value)
        return self.word(value)

    def word(self, text: str) -> str:
        """`text` as a logfmt value, quoted if it must be."""
        return self._known[text]


# What an access line shares with others: method, path, status, model, group, key,
# failovers, outcome.
def configure(level: str, fmt: str, stream: TextIO) -> Renderer:
    """Set up structlog and route stdlib logging (aiohttp, asyncio) through the same
    renderer, which is returned for the access line to write the same way."""
    journal = on_journal(stream)
    shared: list[Any] = [add_request_id, structlog.processors.add_log_level]
    if worker := os.environ.get(WORKER):
        shared.append(lambda _logger, _method, event: {**event, "worker": worker})
    if not journal:
        shared.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    shared.append(structlog.processors.format_exc_info)
    renderer = Renderer(fmt, journal)
    # Not for the stdlib's records: their formatter cannot drop one.
    quiet = [_drop_said_once] if worker and worker != "0" else []
    structlog.configure(
        processors=[*quiet, *shared, renderer],
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
    return renderer
