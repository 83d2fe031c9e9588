"""Send the request upstream, failing over until a candidate produces a first byte.

Each candidate first takes a turn at its upstream's gate (its cap on requests
in flight, hxgw.upstream.admission); one that cannot get a turn in time is shed
and the next candidate tried. Failover is only possible while nothing has
reached the client, so a candidate counts as answered once its response has produced a first body
byte (not merely headers): a reset between headers and body still moves on
to the next model. Connect errors, timeouts, 401/403/408/429 and 5xx are
retryable, and, when there is more than one candidate, an answer that begins as no
answer (`failures.unserved`; `opening` for a stream's first event); any other status is
the request's own fault and goes to the client as the upstream said it
(`failed_candidate` says what each kind of failure does, `failures` what a client gets
when no candidate served).

An upload (hxgw.pipeline.upload) is streamed, not held: once a candidate has
taken bytes of it straight from the client, they cannot be sent again, so it
fails over only before that — connect errors, a shed at the gate, or any
failure while the whole form was still held. After that the upstream's error
goes to the client as it came, or the gateway's 502/504 says what failed.
"""

from __future__ import annotations

import time

import structlog

from hxgw.config import Model
from hxgw.errors import UpstreamTimeout
from hxgw.pipeline.blame import Blame
from hxgw.pipeline.context import Next, Reply, RequestContext
from hxgw.pipeline.failed_candidate import broken, error_status, set_aside
from hxgw.pipeline.failures import (
    RETRYABLE_STATUS,
    Failure,
    TransportError,
    all_failed,
    refused_gateway_key,
    unserved,
)
from hxgw.pipeline.opening import EVENT_STREAM, past_preamble
from hxgw.pipeline.send_upload import send_upload
from hxgw.pipeline.sending import request_headers, send
from hxgw.pipeline.usage import LEFT
from hxgw.upstream import Gate, GateFull, UpstreamConnectError

log = structlog.get_logger("hxgw.pipeline.forward")


async def forward(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.candidates and ctx.upstream_bodies; writes ctx.reply, ctx.served_by,
    ctx.failovers, ctx.ttfb, and the times the overhead figure is made of (ctx.queued at
    an upstream's cap, ctx.sent_at, ctx.upstream_first_at).

    The upstream response is closed on every way out but a complete read, so a
    client that leaves (its handler is cancelled) aborts the upstream request
    at once instead of letting the model generate for nobody.
    """
    ctx.reply = reply = await open_reply(ctx)
    ctx.served_by = reply.model.name
    response = reply.response
    try:
        await call_next(ctx)
    finally:
        if response.at_eof():
            response.release()
        else:
            response.close()
        if ctx.model_failed:
            reply.health.failed(time.monotonic(), token=reply.token)
        elif ctx.outcome in LEFT or ctx.outcome == "cancelled" or ctx.stream_failed:
            reply.health.finished_other(reply.token)
        else:
            reply.health.succeeded(time.perf_counter() - ctx.started, reply.token)


async def open_reply(ctx: RequestContext) -> Reply:
    """Try each candidate in order; return the first response that produced a body byte.
    Whether each 500 on the way was its model's fault is known only then (`blame`)."""
    failed: list[Failure] = []
    blame = Blame()
    try:
        reply = await _first_answer(ctx, failed, blame)
    except BaseException:
        blame.settle(failed, served=False)
        raise
    blame.settle(failed, served=True)
    return reply


async def _first_answer(ctx: RequestContext, failed: list[Failure], blame: Blame) -> Reply:
    headers = request_headers(ctx)
    full: set[str] = set()
    """The upstreams whose gate shed this request."""
    runtime = ctx.state.runtime
    metrics = runtime.metrics
    last = len(ctx.candidates) - 1
    # A pinned model or a one-model group speaks for itself: its answer, whatever it is,
    # goes to the client as it came. A group's last candidate standing (the others'
    # circuits open) does not: what it fails with is the gateway's to say.
    lone = last + len(ctx.decision.skipped if ctx.decision is not None else ()) == 0
    several = not lone and ctx.upload is None  # an answer that is none can be failed over
    for position, model in enumerate(ctx.candidates):
        budget = ctx.state.first_byte_budget(ctx.started, ctx.stream)
        if budget <= 0:
            break  # the total timeout is spent: the rest are not tried, nor blamed
        health = runtime.memory.health[model.name]
        if not health.allows(time.monotonic()) and (failed or position < last):
            # Its circuit turned half-open and another request took the one probe (or it
            # stalled) since the route was decided; the only try left goes all the same.
            continue
        if model.upstream in full:
            continue  # behind a gate that just refused it: it would wait and be shed again
        started = time.perf_counter()
        if failed:  # moving on: what failed before the last candidate counts, not after it
            ctx.failovers += 1
            metrics.failovers.labels(ctx.group or "", failed[-1].model, model.name).inc()
        else:
            ctx.sent_at = started
        gate = runtime.gates.including_removed(model.upstream)
        # Encoded before the slot is taken: a body that cannot be is the client's 400, and
        # a slot is given back only by the connection the request then holds.
        body = ctx.upstream_bodies.for_model(model) if ctx.upload is None else b""
        token: int | None = None
        entered, waited, asked_before = started, 0.0, ctx.trying
        try:
            # The first-byte deadline covers the wait for a turn, the head and the first
            # body bytes.
            with runtime.deadlines.after(budget, ctx.task) as deadline:
                waited = await gate.enter()
                entered = time.perf_counter()
                # Counted against the model from its turn: a wait at its upstream's cap
                # is no slowness of the model's, nor a stall.
                token = health.started(time.monotonic())
                if waited:
                    ctx.queued = (ctx.queued or 0.0) + waited
                    runtime.saturation.waited(gate.name, waited)
                ctx.trying = model  # from here a client that leaves has cost a prompt
                if ctx.upload is None:
                    response = await send(ctx, model, headers, body, gate)
                    try:
                        retryable = response.status in RETRYABLE_STATUS
                        first = b"" if retryable else await response.readany()
                        # The last one's too, after others failed: all failing alike is
                        # said as one (every one overloaded: Anthropic's 529).
                        looks = position < last or failed
                        if several and looks and response.content_type == EVENT_STREAM:
                            left = budget - (time.perf_counter() - started)
                            first = await past_preamble(response, first, left / 2)
                    except BaseException:
                        response.close()
                        raise
            if ctx.upload is not None:
                response, first = await send_upload(ctx, model, headers, gate)
        except GateFull as exc:
            _shed(ctx, gate, exc, model, full, failed)
            continue
        except TransportError as exc:
            first_byte = ctx.state.first_byte_timeout(ctx.stream)
            if token is None:  # its first-byte time ran out while it waited for a turn
                if budget < first_byte:
                    break  # the total timeout's, which nothing is left of
                _shed(
                    ctx, gate, gate.out_of_time(time.perf_counter() - started), model, full, failed
                )
                continue
            if isinstance(exc, UpstreamConnectError):
                ctx.trying = asked_before  # it never had the request
            if deadline.expired and (failed or waited) and budget - waited < first_byte:
                # Less than its own first-byte time was left to it, by the candidates
                # before it or by its wait for a turn: no fault of the model's.
                health.finished_other(token)
                failed.append(Failure(model.name, "timeout", kind="timeout"))
                continue
            health.failed(time.monotonic(), token=token)
            failed.append(broken(model, exc, entered))
            metrics.upstream_errors.labels(model.name, failed[-1].kind).inc()
            if ctx.upload is not None and ctx.upload.consumed:
                break  # the upload cannot be sent again
            continue
        except BaseException:
            if token is not None:
                health.finished_other(token)
            raise
        assert token is not None  # it had its turn
        ctx.trying = None  # it answered: nothing is under way at it now
        refused = refused_gateway_key(response, first) if response.status == 400 else None
        if response.status in RETRYABLE_STATUS or refused:
            secret = _upstream_key(ctx, model)
            error = await error_status(
                response, refused, model, health, token, blame, several, secret
            )
            metrics.upstream_errors.labels(model.name, error.kind).inc()
            failed.append(error)
            final = lone or (ctx.upload is not None and ctx.upload.consumed)
            if error.answer is not None and final:
                raise error.answer
            if final:
                break
            continue
        failure = unserved(model.name, response, first) if several else None
        if failure is not None:
            # Nothing has reached the client: the next candidate may serve it. (A lone
            # candidate's answer is relayed as it came.)
            await set_aside(
                failure, response, first, model, health, token, _upstream_key(ctx, model)
            )
            metrics.upstream_errors.labels(model.name, failure.kind).inc()
            failed.append(failure)
            continue
        now = time.perf_counter()
        runtime.readiness.saw_ok(model.upstream)
        ctx.upstream_first_at = now
        ctx.ttfb = now - ctx.started
        health.first_byte(now - entered, token)
        return Reply(response, first, model, health, token)
    if not failed:
        raise UpstreamTimeout("the request's total timeout ran out before an upstream answered")
    raise all_failed(failed)


def _shed(
    ctx: RequestContext,
    gate: Gate,
    exc: GateFull,
    model: Model,
    full: set[str],
    failed: list[Failure],
) -> None:
    """A candidate not let in at its upstream's cap: the model did nothing wrong, and the
    others behind the same gate are passed over."""
    full.add(model.upstream)
    if exc.waited:
        ctx.queued = (ctx.queued or 0.0) + exc.waited
        ctx.state.runtime.saturation.waited(gate.name, exc.waited)
    failed.append(Failure(model.name, str(exc), retry_after=str(exc.retry_after), shed=True))


def _upstream_key(ctx: RequestContext, model: Model) -> str | None:
    """The gateway's key for the model's upstream (None for one a reload removed)."""
    upstream = ctx.state.config.upstreams.get(model.upstream)
    return upstream.key if upstream is not None else None
