"""Usage billed by whichever answer first carries it (a batch's, read back when its
output is; a background response's, when it is read finished), once: the ledger queues
the row once, the store keeps one row per request id and start, and the key's metrics
grow by what the store took (hxgw.usage.once)."""

from __future__ import annotations

from hxgw.pipeline.context import RequestContext
from hxgw.usage import Values


def bill_once(ctx: RequestContext, row: Values) -> bool:
    """Queue a row billed by whichever answer first carries it (a batch's usage, a
    background response's) unless it was lately; whether it was queued."""
    ledger = ctx.state.runtime.ledger
    return ledger is not None and ledger.record_once(row)
