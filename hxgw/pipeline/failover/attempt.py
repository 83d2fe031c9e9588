"""One candidate's try at a request (`Tries.at`): its turn at its upstream's gate, the
exchange up to the first body byte, and what came of it: a reply to relay, or a failure
noted, and whether the next candidate may still be tried (hxgw.pipeline.forward walks
the candidates).

What each kind of failure does to the model's health: a shed at the gate, or a timeout
that left the model under half its own first-byte time (the total timeout spent by the
candidates before it, or a late turn at the cap), is no fault of the model's; a broken
exchange is (`failed_candidate.broken`); a status to fail over on is judged in
`failed_candidate.error_status`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from hxgw.config import Model
from hxgw.pipeline.answer.error_answer import upstream_key
from hxgw.pipeline.answer.opening import EVENT_STREAM, past_preamble
from hxgw.pipeline.context import Reply, RequestContext
from hxgw.pipeline.failover.blame import Blame
from hxgw.pipeline.failover.failed_candidate import broken, error_status, set_aside
from hxgw.pipeline.failover.failures import RETRYABLE_STATUS, Failure
from hxgw.pipeline.failover.send_upload import send_upload
from hxgw.pipeline.failover.sending import send
from hxgw.pipeline.failover.unserved import refused_gateway_key, unserved
from hxgw.routing.health import ModelHealth
from hxgw.upstream import Gate, GateFull, TransportError, UpstreamConnectError, UpstreamResponse

Then = Literal["next", "stop"]
"""After a failed try: the next candidate, or none (no time left, an upload half sent, a
lone candidate's answer to pass on)."""


@dataclass(slots=True)
class Tries:
    """What one request's tries share, candidate after candidate."""

    ctx: RequestContext
    headers: list[bytes]
    """The request's own header lines, the same for every candidate."""
    lone: bool
    """A pinned model or a one-model group speaks for itself: its answer, whatever it is,
    goes to the client as it came. A group's last candidate standing (the others'
    circuits open) does not: what it fails with is the gateway's to say."""
    failed: list[Failure] = field(default_factory=list)
    blame: Blame = field(default_factory=Blame)
    passed_over: dict[str, Failure | None] = field(default_factory=dict)
    """The upstreams whose gate shed this request (None), or that no connection could be
    opened to (how that failed): their other models are passed over, each of the second
    listed as failing alike (each would have cost a connect timeout of its own)."""

    @property
    def several(self) -> bool:
        """Whether an answer that is no answer can be failed over (not a lone candidate's,
        nor an upload's, streamed as it is sent)."""
        return not self.lone and self.ctx.upload is None

    async def at(self, model: Model, budget: float, looks: bool) -> Reply | Then:
        """Try `model` within `budget` seconds to a first byte; `looks`: read past a
        stream's preamble for an error it opens with."""
        ctx, failed = self.ctx, self.failed
        runtime = ctx.state.runtime
        health = runtime.memory.health[model.name]
        started = time.perf_counter()
        gate = runtime.gates.including_removed(model.upstream)
        # Encoded before the slot is taken: a body that cannot be is the client's 400, and
        # a slot is given back only by the connection the request then holds.
        body = ctx.upstream_bodies.for_model(model) if ctx.upload is None else b""
        # Counted in flight from now (and, half-open, the one probe taken), as the route
        # was decided on; its stall clock starts with its turn. A plain answer's first
        # byte is its last: only the answers that come at once (a stream's, embeddings')
        # are `timed`, saying how soon the model answers.
        timed = ctx.stream or not ctx.endpoint.writes
        token = health.started(time.monotonic(), timed)
        turned, entered, waited, asked_before = False, started, 0.0, ctx.trying
        try:
            # The first-byte deadline covers the wait for a turn, the head and the first
            # body bytes.
            with runtime.deadlines.after(budget, ctx.task) as deadline:
                waited = await gate.enter()
                turned, entered = True, time.perf_counter()
                if waited:
                    health.waiting_from(token, time.monotonic())
                    self._note_wait(gate, waited)
                ctx.trying = model  # from here a client that leaves has cost a prompt
                if ctx.upload is None:
                    response = await send(ctx, model, self.headers, body, gate)
                    try:
                        retryable = response.status in RETRYABLE_STATUS
                        first = b"" if retryable else await response.readany()
                        if self.several and looks and response.content_type == EVENT_STREAM:
                            left = budget - (time.perf_counter() - started)
                            first = await past_preamble(response, first, left / 2)
                    except BaseException:
                        response.close()
                        raise
            if ctx.upload is not None:
                response, first = await send_upload(ctx, model, self.headers, gate)
        except GateFull as exc:
            # Shed at its cap: before its turn, or on a second wait for one (the pool's
            # retry of a kept-alive connection the upstream had closed).
            health.finished_other(token)
            ctx.trying = asked_before  # it never had the request
            self._shed(gate, exc, model)
            return "next"
        except TransportError as exc:
            first_byte = ctx.state.first_byte_timeout(ctx.stream)
            if not turned:  # its first-byte time ran out while it waited for a turn
                health.finished_other(token)
                shed = gate.out_of_time(time.perf_counter() - started)
                if budget < first_byte:  # the total timeout's, which nothing is left of
                    self._note_wait(gate, shed.waited)
                    return "stop"
                self._shed(gate, shed, model)
                return "next"
            if isinstance(exc, UpstreamConnectError):
                ctx.trying = asked_before  # it never had the request
            if deadline.expired and (failed or waited) and budget - waited < first_byte / 2:
                # Less than half its own first-byte time was left to it, by the candidates
                # before it or by its wait for a turn: no fault of the model's.
                health.finished_other(token)
                failed.append(Failure(model.name, "timeout", kind="timeout"))
                return "next"
            health.failed(time.monotonic(), token=token)
            failed.append(broken(model, health, exc, entered))
            if isinstance(exc, UpstreamConnectError):
                self.passed_over[model.upstream] = failed[-1]
            runtime.metrics.upstream_errors.labels(model.name, failed[-1].kind).inc()
            return "stop" if ctx.upload is not None and ctx.upload.consumed else "next"
        except BaseException:
            health.finished_other(token)
            raise
        ctx.trying = None  # it answered: nothing is under way at it now
        # What the answer is: a failure to fail over on (or to pass on), or a reply.
        refused = refused_gateway_key(response, first) if response.status == 400 else None
        if response.status in RETRYABLE_STATUS or refused:
            return await self._error_status(model, health, token, response, refused)
        if self.several and (failure := unserved(model.name, response, first)) is not None:
            # Nothing has reached the client: the next candidate may serve it. (A lone
            # candidate's answer is relayed as it came.)
            secret = upstream_key(ctx.state.config, model)
            await set_aside(failure, response, first, model, health, token, secret)
            runtime.metrics.upstream_errors.labels(model.name, failure.kind).inc()
            failed.append(failure)
            return "next"
        now = time.perf_counter()
        runtime.readiness.saw_ok(model.upstream)
        ctx.upstream_first_at = now
        ctx.ttfb = now - ctx.started
        health.first_byte(now - entered, token, timed=timed)
        return Reply(response, first, model, health, token)

    async def _error_status(
        self,
        model: Model,
        health: ModelHealth,
        token: int,
        response: UpstreamResponse,
        refused: str | None,
    ) -> Then:
        """A status to fail over on, or the upstream refusing the gateway's key: noted, or,
        for a lone candidate, its answer passed on as it came."""
        ctx, secret = self.ctx, upstream_key(self.ctx.state.config, model)
        try:
            error = await error_status(
                response, refused, model, health, token, self.blame, self.several, secret
            )
        except BaseException:
            response.close()  # whatever went wrong, its connection and slot come back
            raise
        ctx.state.runtime.metrics.upstream_errors.labels(model.name, error.kind).inc()
        self.failed.append(error)
        final = self.lone or (ctx.upload is not None and ctx.upload.consumed)
        if error.answer is not None and final:
            raise error.answer
        return "stop" if final else "next"

    def _shed(self, gate: Gate, exc: GateFull, model: Model) -> None:
        """A candidate not let in at its upstream's cap: the model did nothing wrong, and
        the others behind the same gate are passed over."""
        self.passed_over[model.upstream] = None
        self._note_wait(gate, exc.waited)
        failure = Failure(model.name, str(exc), retry_after=str(exc.retry_after), shed=True)
        self.failed.append(failure)

    def _note_wait(self, gate: Gate, waited: float) -> None:
        """A wait for a turn, had or not: the overhead figure and the saturation metrics
        count it."""
        if waited:
            self.ctx.queued = (self.ctx.queued or 0.0) + waited
            self.ctx.state.runtime.saturation.waited(gate.name, waited)
