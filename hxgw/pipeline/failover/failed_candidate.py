"""What a try (`Tries.at`, hxgw.pipeline.failover.attempt) does with a candidate that
failed, by how it failed: its exchange broke (`broken`), it answered a status to fail
over on (`error_status`), or its 200 was no answer (`set_aside`). Each tells the model's
health, keeps what the client may yet be given, and logs the failure (`warn`: at most
ten lines a second a model); `failures` says what the client gets when no candidate
served; `error_answer` reads an upstream's error body."""

from __future__ import annotations

import time

from hxgw.config import Model
from hxgw.pipeline.answer.error_answer import read_answer
from hxgw.pipeline.failover.blame import WAITS_FOR_VERDICT, Blame
from hxgw.pipeline.failover.failures import KEY_REFUSAL, REFUSED_REQUEST, Failure, key_refusal
from hxgw.pipeline.failover.sending import transport_outcome
from hxgw.pipeline.failover.waits import SPARING, spared_for
from hxgw.routing.health import ModelHealth
from hxgw.upstream import UpstreamResponse


def broken(model: Model, health: ModelHealth, exc: BaseException, started: float) -> Failure:
    """The failure of a candidate whose exchange broke (no connection, a timeout, a reset,
    an answer that is not HTTP), logged."""
    outcome = transport_outcome(exc)
    # A broken answer says what broke; the other transport failures are their kind.
    said = str(exc) if outcome == "protocol_error" else outcome
    health.warn(
        "upstream failed",
        model=model.name,
        error=outcome,
        detail=str(exc) or None,
        after_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return Failure(model.name, said, kind=outcome)


async def error_status(
    response: UpstreamResponse,
    refused: str | None,
    model: Model,
    health: ModelHealth,
    token: int,
    blame: Blame,
    several: bool,
    secret: str | None = None,
) -> Failure:
    """The failure of a candidate that answered with a status to fail over on, or refused
    the gateway's key (`refused`): its health told, its answer read (unless it is never
    to be passed on), and logged. Its `answer` is what a lone candidate's client gets."""
    status = response.status
    retry_after = response.headers.get("Retry-After")
    # A 503 (RFC 9110: for about that long) or 529 with a Retry-After, as a 429: the model
    # is spared that long, not asked again by the next request.
    wait = spared_for(response.headers) if status in SPARING else None
    held = None
    if status == REFUSED_REQUEST:  # the request's, not the model's
        health.finished_other(token)
    elif status == WAITS_FOR_VERDICT and several:
        held = blame.hold(health, token, model)
    else:
        health.failed(time.monotonic(), retry_after=wait, token=token)
    answer = None if refused else await read_answer(response, model, secret=secret)
    if held is not None:
        held.heard(answer.message if answer else None)
    if status == KEY_REFUSAL:  # never passed on: it is not the client's
        refused, answer = key_refusal(status, answer), None
    detail = refused or (answer.message if answer else None) or None
    health.warn("upstream error", model=model.name, status=status, detail=detail)
    return Failure(
        model.name,
        detail,
        status,
        retry_after,
        answer,
        gateway_key=refused is not None,
        kind="gateway_key" if refused else f"http_{status}",
    )


async def set_aside(
    failure: Failure,
    response: UpstreamResponse,
    first: bytes,
    model: Model,
    health: ModelHealth,
    token: int,
    secret: str | None = None,
) -> None:
    """A 200 that is no answer (`unserved`), set aside for the next candidate: a request
    too long for the model keeps its answer and spares the model's health; any other
    closes and counts against it."""
    if failure.kind == "context_length":  # the request's length, not the model's fault
        failure.answer = await read_answer(response, model, first, secret)
        health.finished_other(token)
    else:
        response.close()
        health.failed(time.monotonic(), token=token)
    health.warn("upstream error", model=model.name, detail=failure.error)
