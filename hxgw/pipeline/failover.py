"""Sending a request upstream, with failover over the candidate models.

Failover is only possible while nothing has reached the client, so a
candidate counts as answered once its response has produced a first body
byte (not merely headers): a reset between headers and body still moves on
to the next model. Connect errors, timeouts, 401/403/408/429 and 5xx are
retryable; any other status is the request's own fault and goes to the
client as the upstream said it.

A retryable error from the only candidate also goes to the client as the
upstream said it (status, body, rate-limit headers): there was no failover to
report, and an SDK backs off by what the upstream said. When every candidate
answered 429, the client gets the last one's answer with the shortest wait
any of them asked for.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from dataclasses import dataclass
from typing import Any

import structlog

from hxgw import jsonio
from hxgw.config import Model
from hxgw.errors import (
    GatewayError,
    RateLimited,
    UpstreamAnswer,
    UpstreamError,
    UpstreamTimeout,
)
from hxgw.pipeline.context import Reply, RequestContext
from hxgw.pipeline.relaying import passed_headers
from hxgw.upstream.client import UpstreamConnectError, UpstreamResponse, header_line

log = structlog.get_logger("hxgw.pipeline.failover")

RETRYABLE_STATUS = frozenset({401, 403, 408, 429, *range(500, 600)})
FORWARDED_REQUEST_HEADERS = ("traceparent", "tracestate")
TransportError = (OSError, TimeoutError)
# An upstream's error body is passed on whole or not at all; OpenAI's are under 1 KiB.
MAX_ANSWER = 64 * 1024


@dataclass(slots=True)
class _Failure:
    model: str
    error: str | None
    status: int | None = None
    retry_after: str | None = None
    answer: UpstreamAnswer | None = None
    """The upstream's own response, when it sent one that can be passed on."""

    def tried(self) -> dict[str, Any]:
        """What the gateway's own error lists for this candidate."""
        entry: dict[str, Any] = {"model": self.model}
        for name in ("status", "error", "retry_after"):
            value = getattr(self, name)
            if value is not None:
                entry[name] = value
        return entry


async def open_reply(ctx: RequestContext) -> Reply:
    """Try each candidate in order; return the first response that produced a body byte."""
    headers = _headers(ctx)
    failed: list[_Failure] = []
    runtime = ctx.state.runtime
    metrics = runtime.metrics
    for model in ctx.candidates:
        started = time.perf_counter()
        if failed:
            metrics.failovers.labels(ctx.group or "", failed[-1].model, model.name).inc()
        else:
            ctx.sent_at = started
        health = ctx.state.runtime.memory.health[model.name]
        token = health.started(time.monotonic())
        try:
            response, first = await _attempt(ctx, model, headers)
        except TransportError as exc:
            health.failed(time.monotonic(), token=token)
            outcome = _transport_outcome(exc)
            metrics.upstream_errors.labels(model.name, outcome).inc()
            ctx.failovers += 1
            failed.append(_Failure(model.name, outcome))
            log.warning(
                "upstream failed",
                model=model.name,
                error=outcome,
                detail=str(exc) or None,
                after_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            continue
        except BaseException:
            health.finished_other(token)
            raise
        refused = _refused_gateway_key(response, first) if response.status == 400 else None
        if response.status in RETRYABLE_STATUS or refused:
            retry_after = response.headers.get("Retry-After")
            wait = _seconds(retry_after) if response.status == 429 else None
            health.failed(time.monotonic(), retry_after=wait, token=token)
            kind = "gateway_key" if refused else f"http_{response.status}"
            metrics.upstream_errors.labels(model.name, kind).inc()
            answer = None if refused else await _read_answer(response, model)
            detail = refused or (answer.message if answer else None) or None
            ctx.failovers += 1
            failed.append(_Failure(model.name, detail, response.status, retry_after, answer))
            log.warning("upstream error", model=model.name, status=response.status, detail=detail)
            if answer is not None and len(ctx.candidates) == 1:
                raise answer
            continue
        now = time.perf_counter()
        runtime.readiness.saw_ok(model.upstream)
        ctx.upstream_first_at = now
        ctx.ttfb = now - ctx.started
        health.first_byte(now - started, token)
        return Reply(response, first, model, health, token)
    raise _all_failed(failed)


async def _attempt(
    ctx: RequestContext, model: Model, headers: list[bytes]
) -> tuple[UpstreamResponse, bytes]:
    state = ctx.state
    body = ctx.upstream_bodies.for_model(model)
    with state.runtime.deadlines.after(state.first_byte_budget(ctx.started), ctx.task):
        response = await state.client.request(
            b"POST",
            state.origins[model.upstream],
            ctx.endpoint.upstream_path.encode(),
            state.upstream_head[model.upstream],
            headers,
            body,
            connect_timeout=state.config.timeouts.connect,
        )
        try:
            if response.status in RETRYABLE_STATUS:
                return response, b""
            return response, await response.readany()
        except BaseException:
            response.close()
            raise


def _refused_gateway_key(response: UpstreamResponse, first: bytes) -> str | None:
    """For a 400: LiteLLM without a database answers a key other than its master key
    with 400 "No connected db." That is the gateway's misconfiguration, not the
    client's fault."""
    if b"no_db_connection" in first:
        response.close()
        return (
            "the upstream refused the gateway's own key (LiteLLM without a database "
            "accepts only its master key: set HX_UPSTREAM_KEY to it)"
        )
    return None


def _seconds(value: str | None) -> int | None:
    """A Retry-After in whole seconds, if it is a sane wait to keep a model out for."""
    delay = _delay(value)
    if delay is None:
        return None
    wait = math.ceil(delay)
    return wait if 0 < wait <= 3600 else None


def _delay(value: str | None) -> float | None:
    """A Retry-After in seconds or as an HTTP date (RFC 9110), as seconds from now."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _headers(ctx: RequestContext) -> list[bytes]:
    """The request's own header lines; the fixed ones come framed from the snapshot."""
    lines = [header_line("X-Request-ID", ctx.request_id)]
    for name in FORWARDED_REQUEST_HEADERS:
        value = ctx.exchange.header(name)
        if value is not None:
            lines.append(header_line(name, value))
    return lines


def _transport_outcome(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamConnectError):
        return "connect_error"
    return "reset"


async def _read_answer(response: UpstreamResponse, model: Model) -> UpstreamAnswer | None:
    """The upstream's error response as the client may get it, read briefly; None when
    it cannot be read whole (the message for logs is then missing too)."""
    try:
        async with asyncio.timeout(2):
            data = await response.read(MAX_ANSWER + 1)
    except TransportError:
        return None
    finally:
        response.release()
    if len(data) > MAX_ANSWER:
        return None
    headers = passed_headers(response)
    headers["X-HX-Model"] = model.name
    return UpstreamAnswer(_summary(data), answer_status=response.status, headers=headers, body=data)


def _summary(data: bytes) -> str:
    """The upstream's own error message, cut short, for logs and the gateway's errors."""
    try:
        parsed = jsonio.loads(data)
        message = parsed["error"]["message"] if isinstance(parsed.get("error"), dict) else parsed
        return str(message)[:300]
    except (jsonio.DecodeError, AttributeError, KeyError, TypeError):
        return data.decode("utf-8", "replace")[:300]


def _all_failed(failed: list[_Failure]) -> GatewayError:
    tried = [f.tried() for f in failed]
    names = ", ".join(f.model for f in failed)
    if failed and all(f.status == 429 for f in failed):
        answers = [f.answer for f in failed if f.answer is not None]
        if len(answers) == len(failed):
            return _shortest_wait(answers)
        waits = [w for f in failed if (w := _seconds(f.retry_after)) is not None]
        extra: dict[str, Any] = {"tried": tried}
        if waits:
            extra["retry_after"] = min(waits)
        return RateLimited(f"every candidate model is rate limited: {names}", **extra)
    if failed and all(f.error == "timeout" for f in failed):
        return UpstreamTimeout(f"no upstream answered in time; tried {names}", tried=tried)
    return UpstreamError(f"no upstream could serve the request; tried {names}", tried=tried)


def _shortest_wait(answers: list[UpstreamAnswer]) -> UpstreamAnswer:
    """The last 429 as it came, but asking the client to wait only until the first
    candidate frees up: the gateway can serve the retry with that one."""
    last = answers[-1]
    waits = [wait for a in answers if (wait := _wait_ms(a.headers)) is not None]
    if not waits:
        return last
    shortest = min(waits)
    headers = {k: v for k, v in last.headers.items() if k not in ("Retry-After", "retry-after-ms")}
    # Both say the same wait; a whole second is never shorter than the milliseconds.
    headers["Retry-After"] = str(math.ceil(shortest / 1000))
    headers["retry-after-ms"] = str(shortest)
    return UpstreamAnswer(last.message, answer_status=429, headers=headers, body=last.body)


def _wait_ms(headers: dict[str, str]) -> int | None:
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
    seconds = _delay(headers.get("Retry-After"))
    return None if seconds is None else max(0, math.ceil(seconds * 1000))
