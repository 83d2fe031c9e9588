"""A key's limits: reserve what the request may use before it goes upstream, and
reconcile to what it used when it ends, however it ends.

The reservation is the request's size in tokens plus the completion it asked
for (or a default), priced at its dearest candidate, since failover may move it
there; so parallel requests cannot overspend a budget between them, by more than their
estimates fall short (docs/limits.md). The key's
`x-ratelimit-*` headers go out with the answer, or with the 429 that refuses it.
A key's end users may each be held to limits of their own (`per_user`): a request that
names its end user reserves against those too. A key in a team reserves against the
team's limits as well, which all its keys share. The headers say the tightest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from hxgw.config import ClientKey, KeyLimits
from hxgw.endpoints import RESPONSES
from hxgw.errors import BackgroundNotAllowed, GatewayError
from hxgw.keys import LimitDecision, Limiter, Reservation, refusal
from hxgw.keys.per_user import team_name, tighter, user_name
from hxgw.observe.key_metrics import BudgetGauges
from hxgw.pipeline.billing.end_user import end_user
from hxgw.pipeline.billing.usage import (
    counting_limits,
    estimated_completion,
    estimated_cost,
    estimated_prompt,
    used,
)
from hxgw.pipeline.context import Next, RequestContext
from hxgw.pipeline.rendering import note_error


def apply_limits(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads ctx.key, ctx.raw_body, ctx.body and ctx.candidates; writes ctx.limit_headers,
    and a budgeted key's budget and spend to the metrics. For a key with limits, as the
    rest of the chain returns, it fixes ctx.used (`used`), which reconciles the
    reservations, and so first sets ctx.status and ctx.outcome of an error (`note_error`)."""
    key = ctx.key
    if key is None:
        return call_next(ctx)
    if not ctx.endpoint.billed:
        limits = _unbilled(key.limits)
        if limits is None:
            return call_next(ctx)
        return _within_limits(ctx, key.name, [(key.name + UNBILLED, limits, {})], call_next)
    asked = _held_to(key, ctx.body)
    if not asked:
        return call_next(ctx)
    return _within_limits(ctx, key.name, asked, call_next)


UNBILLED = " (unbilled)"
"""The limiter's name for a key's requests that use no tokens: counting them, listing
models, reading a response, a file or a batch. Anthropic limits token counting apart
from messages, OpenAI such calls apart from a model's requests: they get requests per
minute and at once of their own, as many as the key's, so that an app that counts before
each message, or lists the models at start, keeps the rate the operator set. (An end
user's limits and a team's hold only billed requests: the others seldom say whom they
are for, and a team bounds what its keys spend.)"""

Asked = list[tuple[str, KeyLimits, dict[str, str]]]
"""The limits a request is held to: each one's name in the limiter, and whose they are
(`refusal`'s words for them: none for the key's own)."""


def _unbilled(limits: KeyLimits | None) -> KeyLimits | None:
    if limits is None or (limits.rpm is None and limits.max_parallel is None):
        return None
    return KeyLimits(rpm=limits.rpm, max_parallel=limits.max_parallel)


def _held_to(key: ClientKey, body: dict[str, Any] | None) -> Asked:
    """The limits a billed request of `key` is held to, the tightest first: its end
    user's (when the key gives them limits and the request names one), the key's own, its
    team's. Each refuses more often than the next, and a refusal of the first
    reservation has nothing to take back."""
    asked: Asked = []
    if key.per_user is not None and body is not None and (who := end_user(body)) is not None:
        asked.append((user_name(key.name, who), key.per_user, {"end_user": who}))
    if key.limits is not None:
        asked.append((key.name, key.limits, {}))
    if key.team is not None and not key.team.limits.limit_nothing():  # not one of groups alone
        asked.append((team_name(key.team.name), key.team.limits, {"team": key.team.name}))
    return asked


async def _within_limits(ctx: RequestContext, name: str, asked: Asked, call_next: Next) -> None:
    """Reserve against each limit `asked`, call the rest of the chain, reconcile. `name`:
    the key's own name in the limiter. The answer's headers say what is left of the
    tightest."""
    if ctx.endpoint is RESPONSES and ctx.body and ctx.body.get("background") not in _FOREGROUND:
        _may_run_in_background(asked)
    limiter = ctx.state.runtime.limiter
    prompt, completion = estimated_prompt(ctx), estimated_completion(ctx)
    cost = estimated_cost(ctx.candidates, prompt, completion)
    anthropic = ctx.endpoint.dialect == "anthropic"
    made: list[Reservation] = []
    headers: dict[str, str] = {}
    gauged: list[Gauged] = []
    try:
        for limiter_name, its_limits, whose in asked:
            decision = await limiter.reserve(
                limiter_name, its_limits, prompt + completion, cost, time.time()
            )
            team = whose.get("team")
            figures = ctx.state.runtime.metrics.keys
            if team is not None:
                figures.team_asked(team)
            if "end_user" not in whose and _gauged(decision):
                gauges, shown = (figures.teams, team) if team else (figures.budgets, name)
                gauges.seen(
                    shown,
                    its_limits.budget or 0.0,
                    decision.usage.spent,
                    decision.now,
                    its_limits.budget_period_s,
                )
                gauged.append((len(made), gauges, shown))
            if not decision.allowed or decision.reservation is None:
                prompt_cost = (
                    estimated_cost(ctx.candidates, prompt, 0) if its_limits.budget else 0.0
                )
                refused = refusal(decision, prompt, prompt_cost, anthropic=anthropic, **whose)
                if team is not None:
                    figures.team_refused(team, refused.code)
                raise refused
            made.append(decision.reservation)
            said = decision.headers()
            if anthropic:
                said |= decision.anthropic_headers()
            headers = tighter(said, headers) if headers else said
    except BaseException:
        for reservation in made:  # never sent: as if it had not been made
            limiter.release(reservation)
        raise
    ctx.limit_headers = headers
    try:
        await call_next(ctx)
    except GatewayError as exc:
        note_error(ctx, exc)  # `used` below reads them: render_errors answers after it
        raise
    finally:
        await _settle(ctx, made, gauged)


def _gauged(decision: LimitDecision) -> bool:
    """Whether the metrics show the budget `decision` says (a key's own, or its team's),
    refused or not (the figures of headroom): not while Redis is away and the request is
    counted in this process (fail_open), from nothing. (An end user's would be a series
    each.)"""
    return decision.limits.budget is not None and decision.store != "local"


Gauged = tuple[int, BudgetGauges, str]
"""A budget the metrics show: its reservation's place among those made, its gauges, and
the name they show it by (the key's, or its team's)."""


async def _settle(ctx: RequestContext, made: list[Reservation], gauged: list[Gauged]) -> None:
    """Reconcile the reservations `made` to what the request used, and the budgets the
    metrics show (`gauged`) to what each reservation's limiter says was spent."""
    task = ctx.task
    cancelled = task is not None and task.cancelling() > 0
    if cancelled:
        # Said here, not only in record_usage: `used` is worked out once, now, and a
        # client gone before the answer still pays the prompt the upstream read.
        ctx.cancelled()
    spent = used(ctx)
    limiter, now = ctx.state.runtime.limiter, time.time()
    for _, gauges, shown in gauged:  # now: a client that leaves meanwhile cancels the wait
        gauges.charged(shown, spent.cost, now)
    # At `now` too: the spend it gives back is of the period at that time.
    settle = _reconciled(limiter, made, spent.total, spent.cost, now)
    # The client left: its request is cancelled, not its bill. (Only then: a shield is a
    # task of its own, 3% of a request's CPU.)
    spent_now = await (asyncio.shield(settle) if cancelled else settle)
    for index, gauges, shown in gauged:
        if (said := spent_now[index]) is not None:
            gauges.spent(shown, said, now)


async def _reconciled(
    limiter: Limiter, made: list[Reservation], tokens: int, cost: float, now: float
) -> list[float | None]:
    """Each reservation reconciled, and the spend each one's limiter says (None where it
    does not say at once). A client that leaves while one is being reconciled (the
    workers' limiter waits for its thread) leaves the others to be reconciled all the
    same: its request is cancelled, not its bill, nor the slot the next request needs."""
    spent_now: list[float | None] = []
    gone = None
    for reservation in made:
        try:
            spent_now.append(await limiter.reconcile(reservation, tokens, cost, now))
        except asyncio.CancelledError as exc:
            spent_now.append(None)
            gone = exc
    if gone is not None:
        raise gone
    return spent_now


_FOREGROUND = (None, False)
"""What `background` may say for a key whose use is counted: anything else an upstream
may read as true (pydantic's bool takes 1, "yes", "on")."""


def _may_run_in_background(asked: Asked) -> None:
    """A background response is answered `queued`, without a usage, and its usage is read
    later, if ever, by a call that bills nothing: a budget or a TPM limit, the key's, its
    end user's or its team's, cannot count it."""
    if any(counting_limits(limits) for _, limits, _ in asked):
        raise BackgroundNotAllowed(
            "this key has a budget or a tokens-per-minute limit, which the gateway cannot "
            "hold a background response to (it runs after the answer, which has no usage "
            "yet): leave out background, or use a key without them",
            param="background",
        )
