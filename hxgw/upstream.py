"""Sending a request upstream, with failover over the candidate models.

Failover is only possible while nothing has reached the client, so a
candidate counts as answered once its response has produced a first body
byte (not merely headers): a reset between headers and body still moves on
to the next model. Connect errors, timeouts, 401/403/408/429 and 5xx are
retryable; any other status is the request's own fault and goes to the
client as the upstream said it.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from typing import Any

import structlog

from hxgw import jsonio
from hxgw.config import Model
from hxgw.context import Reply, RequestContext
from hxgw.errors import GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from hxgw.upstream_http import UpstreamConnectError, UpstreamResponse, header_line

log = structlog.get_logger("hxgw.upstream")

RETRYABLE_STATUS = frozenset({401, 403, 408, 429, *range(500, 600)})
FORWARDED_REQUEST_HEADERS = ("traceparent", "tracestate")
TransportError = (OSError, TimeoutError)


async def open_reply(ctx: RequestContext) -> Reply:
    """Try each candidate in order; return the first response that produced a body byte."""
    headers = _headers(ctx)
    failed: list[dict[str, Any]] = []
    runtime = ctx.state.runtime
    metrics = runtime.metrics
    for model in ctx.candidates:
        started = time.perf_counter()
        if failed:
            metrics.failovers.labels(ctx.group or "", failed[-1]["model"], model.name).inc()
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
            failed.append({"model": model.name, "error": outcome})
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
            detail = refused or await _error_summary(response)
            ctx.failovers += 1
            failed.append(
                {
                    "model": model.name,
                    "status": response.status,
                    "error": detail,
                    "retry_after": retry_after,
                }
            )
            log.warning("upstream error", model=model.name, status=response.status, detail=detail)
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
    """A Retry-After in seconds or as an HTTP date (RFC 9110), if it is a sane wait."""
    if value is None:
        return None
    if value.isdigit():
        wait = int(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        wait = math.ceil(when.timestamp() - time.time())
    return wait if 0 < wait <= 3600 else None


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


async def _error_summary(response: UpstreamResponse) -> str | None:
    """The upstream's own error message, read briefly and cut short, for logs and the client."""
    try:
        async with asyncio.timeout(2):
            data = await response.read(4096)
    except TransportError:
        return None
    finally:
        response.release()
    try:
        parsed = jsonio.loads(data)
        message = parsed["error"]["message"] if isinstance(parsed.get("error"), dict) else parsed
        return str(message)[:300]
    except (jsonio.DecodeError, AttributeError, KeyError, TypeError):
        return data.decode("utf-8", "replace")[:300] or None


def _all_failed(failed: list[dict[str, Any]]) -> GatewayError:
    tried = [{k: v for k, v in f.items() if v is not None} for f in failed]
    names = ", ".join(f["model"] for f in failed)
    if failed and all(f.get("status") == 429 for f in failed):
        waits = [w for f in failed if (w := _seconds(f.get("retry_after"))) is not None]
        extra: dict[str, Any] = {"tried": tried}
        if waits:
            extra["retry_after"] = min(waits)
        return RateLimited(f"every candidate model is rate limited: {names}", **extra)
    if failed and all(f.get("error") == "timeout" for f in failed):
        return UpstreamTimeout(f"no upstream answered in time; tried {names}", tried=tried)
    return UpstreamError(f"no upstream could serve the request; tried {names}", tried=tried)
