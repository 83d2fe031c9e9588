"""Give every request an id that follows it to the upstream, the logs and the client."""

from __future__ import annotations

import re
from collections.abc import Awaitable

from hxgw.observe import REQUEST_ID
from hxgw.pipeline.context import Next, RequestContext
from hxgw.usage.schema import BILLED_AS

# Accept a caller's id only when it is safe to echo in headers and logs.
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def assign_request_id(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads the X-Request-ID header; writes ctx.request_id and binds it to every log line.

    An accepted id has no character that logfmt would quote: the access line relies
    on that. Nor may it pass for a row billed apart from any request (`BILLED_AS`): the
    ledger's reports would not count the request."""
    given = ctx.exchange.header("X-Request-ID")
    if given and _VALID_ID.fullmatch(given) and not given.lower().startswith(BILLED_AS):
        ctx.request_id = given
    else:
        ctx.request_id = ctx.state.runtime.ids.new()
    REQUEST_ID.set(ctx.request_id)
    return call_next(ctx)
