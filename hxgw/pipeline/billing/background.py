"""A background response's usage, billed once, by whichever answer first carries it.

A response made with `background: true` is answered at once, queued: what it will use is
not known yet. It runs upstream, and its client fetches it later
(`GET /v1/responses/{id}`, or a cancel) or reads it streamed as it runs. So the request
that made it bills nothing, and the usage is billed on a row of its own, whose request
id and start are the response's (its id, as `billed_apart` writes it, and its
`created_at`): the first answer that carries the finished response with its usage (the
stream that made it, ended; a retrieve; a cancel) writes that row, and the ledger keeps
one row per request id and start, so any later one adds nothing (as long as the upstream
says the same `created_at` each time, as OpenAI's does). The stream that made it, cut
short, bills what it relayed on that row, estimated, as any cut stream does, until an
answer that carries the finished response's usage takes its place
(hxgw.usage.schema.INSERT).
"""

from __future__ import annotations

import time

from hxgw import jsonio
from hxgw.endpoints import RESPONSES
from hxgw.pipeline.billing.end_user import end_user
from hxgw.pipeline.billing.reported_usage import (
    reported_parts,
    reported_tokens,
    written_usage,
)
from hxgw.pipeline.billing.usage import cost_of, estimated_prompt
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.rebind import background_response
from hxgw.usage import UsageRow, Values
from hxgw.usage.schema import billed_apart

FINISHED = frozenset({"completed", "incomplete", "failed", "cancelled"})
"""A response's statuses once it has stopped running: its usage is its last."""
MILLISECONDS = 10**11
"""From it on, a time is in milliseconds (from 1973; in seconds it would be the year 5138)."""
CLOCK_SLACK = 3600.0
"""How far an upstream's clock and the gateway's may be apart."""


def unix_time(value: object) -> float | None:
    """An upstream's time (a `created_at`) as Unix seconds; None for one that is no time
    of its making. Milliseconds, which some servers send, are read as such: the ledger
    took 1e300, -1e18 and 2**64 as starts, which no `--since` window ever left."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if MILLISECONDS <= value < MILLISECONDS * 1000:
        value /= 1000
    return float(value) if 0 < value <= time.time() + CLOCK_SLACK else None


def background_row(ctx: RequestContext) -> Values | None:
    """The row of the finished background response the request's answer carried, with
    the usage it reported; None when it carried none (still running, or no usage)."""
    response = background_response(ctx.rebind)
    if response is None or ctx.reply is None or ctx.key is None:
        return None
    started = unix_time(response.get("created_at"))
    if started is None:
        return None  # nothing to make its row's start the same each time
    usage, status = response.get("usage"), response.get("status")
    source = "reported"
    if jsonio.one_of(status, FINISHED) and isinstance(usage, dict):
        reported = written_usage(usage)
    elif ctx.stream and ctx.answered and ctx.usage:
        # The stream that made it, read to its final event.
        reported, status = ctx.usage, "completed" if ctx.outcome == "ok" else ctx.outcome
    elif ctx.stream and ctx.endpoint is RESPONSES:
        # The stream that made it, cut short: what it relayed is billed, as for any cut
        # stream, until a later read of the finished response replaces it with its usage.
        reported, status, source = b"", ctx.outcome, "estimated"
    else:
        return None
    counts = reported_tokens(reported) if reported else (estimated_prompt(ctx), ctx.events)
    if counts is None:
        return None
    prompt, completion = counts
    read, written, reasoning = (
        reported_parts(reported, prompt, completion) if reported else (0, 0, 0)
    )
    model = ctx.reply.model
    return UsageRow(
        request_id=billed_apart(str(response["id"])),
        key_name=ctx.key.name,
        route=RESPONSES.name,
        model_group=ctx.group,
        model=model.name,
        status=200,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=cost_of(model, prompt, completion, read, written),
        started=started,
        ended=time.time(),
        usage_source=source,
        outcome="ok" if status == "completed" else str(status),
        cached_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
        # The request that made it said; a later read has the response's echo of it.
        end_user=(ctx.body and end_user(ctx.body)) or end_user(response),
        team=ctx.key.team.name if ctx.key.team else None,
    ).values()
