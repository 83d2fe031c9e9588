"""A batch's usage, billed once, on a row of its own, when an answer carries it ended.

A batch's lines run upstream, later, each a request the gateway never sees. Once the
batch has ended, OpenAI's batch object says what all of them used (`usage`, on batches
made since September 2025) and which model ran them (`model`). The first answer through
the gateway that carries the ended batch with its usage (a retrieve, a list, a cancel),
whichever key reads it, bills it to the key that made it, as a background response is
billed (hxgw.pipeline.billing.background): on a row whose request id is `usage-of-` and the
batch's id and whose start is its `created_at`, so that a later read adds nothing. The
model is the registry's that the upstream knows by that name, priced at its
`batch_factor`; one the registry lacks is named as the upstream says, and costs nothing
(said in the log). The row's team is the owner's team when the batch is billed (its lines
ran until then); none once the owner is gone.
"""

from __future__ import annotations

import re
import time
from typing import Any, NamedTuple

import structlog

from hxgw import jsonio
from hxgw.config import Config, Model
from hxgw.endpoints import BATCHES
from hxgw.keys.book import keys_now
from hxgw.pipeline.billing.background import unix_time
from hxgw.pipeline.billing.once import bill_once
from hxgw.pipeline.billing.usage import cost_of
from hxgw.pipeline.context import RequestContext
from hxgw.routing.prompt_size import MAX_TOKENS
from hxgw.usage import UsageRow, Values, stored_text
from hxgw.usage.schema import billed_apart

ENDED = {
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelled": "cancelled_at",
}
"""A batch's statuses once none of its lines runs any more, and when each was reached."""
MODEL_CHARS = 256
"""The most of a model's name as its upstream gave it that a row keeps (OpenAI's are
under 64): it becomes a series of the status page's charts and a line of `hxgw usage`."""
MOST_TOKENS = 50_000 * MAX_TOKENS
"""The most tokens a batch is counted for: OpenAI's most lines, each at the most one
request is counted for. A larger figure is not a count."""
log = structlog.get_logger("hxgw.usage")

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
"""A model's snapshot date, which OpenAI's batch names (`gpt-4o-mini-2024-07-18`) where
the registry may name the model (`gpt-4o-mini`)."""


class Owned(NamedTuple):
    """A batch an answer held, as the client gets it, with the key that made it."""

    batch: dict[str, Any]
    owner: str
    upstream: str


def bill_ended(ctx: RequestContext, owned: list[Owned]) -> None:
    """Write the row of each ended batch of `owned` that says its usage (once: later reads
    carry it too); a model the registry lacks is said in the log with it."""
    if ctx.state.runtime.ledger is None:
        return
    teams: dict[str, str | None] | None = None  # walked for the first ended batch alone
    for batch, owner, upstream in owned:
        if not jsonio.one_of(batch.get("status"), ENDED):
            continue
        if teams is None:
            teams = _teams_of_keys(ctx)
        named = batch.get("model")
        model = (
            _registry_model(ctx.state.config, upstream, named) if isinstance(named, str) else None
        )
        row = batch_row(batch, owner, upstream, model, teams.get(owner))
        if row is not None and bill_once(ctx, row) and model is None:
            log.warning(
                "a batch's model is not in the registry: its usage costs nothing",
                batch=batch.get("id"),
                model=_upstream_name(named),
                upstream=upstream,
            )


def batch_row(
    batch: dict[str, Any], owner: str, upstream: str, model: Model | None, team: str | None = None
) -> Values | None:
    """The row of an ended batch (as the client gets it, its id bound) that the key
    `owner` of `team` made on `upstream`, run by the registry's `model`; None while it
    runs, or when it says no usage."""
    status, usage = batch.get("status"), batch.get("usage")
    started = unix_time(batch.get("created_at"))
    if not jsonio.one_of(status, ENDED) or not isinstance(usage, dict) or started is None:
        return None
    prompt, completion = _tokens(usage, "input_tokens"), _tokens(usage, "output_tokens")
    read = _tokens(usage.get("input_tokens_details"), "cached_tokens")
    reasoning = _tokens(usage.get("output_tokens_details"), "reasoning_tokens")
    named = batch.get("model")
    cost = 0.0
    if model is not None and model.price is not None:
        cost = cost_of(model, prompt, completion, min(read, prompt)) * model.price.batch_factor
    ended = unix_time(batch.get(ENDED[status]))
    return UsageRow(
        request_id=billed_apart(str(batch.get("id"))),
        key_name=owner,
        route=BATCHES.name,
        model_group=f"upstream:{upstream}",
        model=model.name if model is not None else _upstream_name(named),
        status=200,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=cost,
        started=started,
        ended=time.time() if ended is None else ended,
        usage_source="reported",
        outcome="ok" if status == "completed" else str(status),
        cached_tokens=min(read, prompt),
        reasoning_tokens=min(reasoning, completion),
        team=team,
    ).values()


def _teams_of_keys(ctx: RequestContext) -> dict[str, str | None]:
    """The team of each key that opens the gateway now, by the key's name. Walked once
    per answer that holds an ended batch (a list may hold many): no index of keys by
    name is kept for it."""
    keys = keys_now(ctx.state.keys_by_digest.values(), ctx.state.runtime.stored_keys)
    return {key.name: None if key.team is None else key.team.name for key in keys}


def _registry_model(config: Config, upstream: str, named: str) -> Model | None:
    """The registry's model that `upstream` serves as `named`: by its `upstream_model`
    first, the upstream's own name for it, then by its name in the registry; a
    snapshot of either too."""
    undated = _DATED.sub("", named)
    on_it = [m for m in config.models.values() if m.upstream == upstream]
    for wanted in (named, undated):
        for model in on_it:
            if model.upstream_model == wanted:
                return model
        for model in on_it:
            if model.name == wanted:
                return model
    return None


def _tokens(usage: object, field: str) -> int:
    """A count of `usage`, 0 when it is not one."""
    value = usage.get(field) if isinstance(usage, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return 0
    return min(value, MOST_TOKENS)


def _upstream_name(named: object) -> str | None:
    """A model the registry lacks, by the name its upstream gave it, cut to MODEL_CHARS
    (a NUL in it would have PostgreSQL refuse the row)."""
    return stored_text(named, MODEL_CHARS) if isinstance(named, str) else None
