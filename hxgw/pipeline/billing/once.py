"""Usage billed by whichever answer first carries it (a batch's, read back when its
output is; a background response's, when it is read finished), once: the ledger keeps
the row's id a while (hxgw.usage.once), and the key's figures grow by it once."""

from __future__ import annotations

from hxgw.pipeline.context import RequestContext
from hxgw.usage import Values


def bill_once(ctx: RequestContext, row: Values) -> bool:
    """Queue a row billed by whichever answer first carries it (a batch's usage, a
    background response's) unless it was lately, and add it to its key's figures as its
    requests' are; whether it was queued."""
    runtime = ctx.state.runtime
    added = runtime.ledger.record_once(row) if runtime.ledger is not None else None
    if added is not None:
        # Counters only grow: a report below its estimate leaves the estimate in them
        # (the ledger has the report), or Prometheus would read a drop as a reset.
        key, prompt, completion, cost = added
        runtime.metrics.key_billed(key, max(prompt, 0), max(completion, 0), max(cost, 0.0))
    return added is not None
