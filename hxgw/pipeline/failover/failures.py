"""What a failed candidate tells the client: the record of each failure (the upstream's
own error answer is read in `error_answer`), and the one error the client gets when
none served.

A candidate whose upstream was at its cap makes the answer a 503 that says so,
with a Retry-After: the gateway's own overload, which a retry soon can get past.
A retryable error from the only candidate goes to the client as the upstream
said it (status, body, rate-limit headers): there was no failover to report,
and an SDK backs off by what the upstream said. When every candidate answered
429 or 529, the client gets the last one's answer with the shortest wait any of them
asked for; when every one answered 503 and one said how long to wait, the gateway's own
503 with the shortest wait; when each was busy in its own way (a 429, a 529 or an
overloaded stream, a 503), the gateway's own 429 where one was rate limited, else its
503 where one said how long to wait, with the shortest wait. Otherwise the gateway's own
502 or 504 lists what was tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hxgw.errors import (
    LONGEST_SDK_WAIT,
    AtCapacity,
    GatewayError,
    GatewayKeyRefused,
    Overloaded,
    RateLimited,
    UpstreamAnswer,
    UpstreamError,
    UpstreamsUnavailable,
    UpstreamTimeout,
)
from hxgw.pipeline.answer.error_answer import error_of
from hxgw.pipeline.failover.waits import retry_seconds, shortest_wait, wait_ms

RETRYABLE_STATUS = frozenset({401, 403, 408, 429, *range(500, 600)})
RATE_LIMITED = 429
OVERLOADED = 529
UNAVAILABLE = 503
BUSY = frozenset({RATE_LIMITED, OVERLOADED})
"""Rate limited, or (Anthropic's 529) overloaded: when every candidate says so, the client
gets the last answer as it came, asked to wait only as long as the shortest wait."""
WAIT_A_WHILE = BUSY | {UNAVAILABLE}
"""What a retry a little later may get past: when every candidate said one of them, the
client is told the shortest wait any asked for (as a 429 where one was rate limited)."""
REFUSED_REQUEST = 403
"""Failed over, as a permission a model lacks, but held against no model's health, and
passed on when every candidate gave it: some upstreams say with it that the prompt was
flagged (OpenRouter's moderation), which every model would refuse alike."""


@dataclass(slots=True)
class Failure:
    model: str
    error: str | None
    status: int | None = None
    retry_after: str | None = None
    answer: UpstreamAnswer | None = None
    """The upstream's own response, when it sent one that can be passed on."""
    shed: bool = False
    """Not tried: its upstream was at its cap (hxgw.upstream.admission)."""
    gateway_key: bool = False
    """The upstream refused the gateway's own key (`refused_gateway_key`)."""
    overloaded: bool = False
    """Its stream opened with Anthropic's `overloaded_error` (an HTTP 529 is `status`)."""
    kind: str = ""
    """Its `hxgw_upstream_errors_total` kind (`timeout`, `http_429`, `gateway_key`, what
    `unserved` found...); "context_length" is the one read back (`all_failed`). A shed
    candidate has none: it was not tried."""

    def tried(self) -> dict[str, Any]:
        """What the gateway's own error lists for this candidate."""
        entry: dict[str, Any] = {"model": self.model}
        for name in ("status", "error", "retry_after"):
            value = getattr(self, name)
            if value is not None:
                entry[name] = value
        return entry


KEY_REFUSAL = 401
"""An upstream's answer to a key it refuses. The client's key never goes upstream, so it
is the gateway's misconfiguration, never the client's fault: passed on, it would tell the
client (and its SDK) that its own key is wrong. A 403 is not taken for one: some
upstreams say with it that a prompt was flagged (OpenRouter's moderation)."""


def key_refusal(status: int, answer: UpstreamAnswer | None) -> str:
    """What an upstream's 401 says: its own words, and where the key is set."""
    said = f": {answer.message[:200]}" if answer is not None and answer.message else ""
    return (
        f"the upstream refused the gateway's own key (HTTP {status}{said}): check the "
        "upstream's key (its key_env, HX_UPSTREAM_KEY by default)"
    )


def retry_helps(answer: UpstreamAnswer) -> bool:
    """Whether an SDK should retry an upstream's 429 or 529 within the call, as it would
    unless told `x-should-retry: false`: not when it asks for a wait longer than a client
    should sleep in one call (Anthropic's SDKs sleep whatever it says: minutes, silently),
    nor when it says a quota is spent (the gateway's own account's, which no retry of the
    client's refills)."""
    if answer.answer_status not in BUSY:
        return True
    wait = wait_ms(answer.headers)
    if wait is not None and wait > LONGEST_SDK_WAIT * 1000:
        return False
    if b"insufficient_quota" not in answer.body:
        return True
    error = error_of(answer.body)
    return "insufficient_quota" not in (error.get("code"), error.get("type"))


def all_failed(failed: list[Failure]) -> GatewayError:
    tried = [f.tried() for f in failed]
    names = ", ".join(f.model for f in failed)
    shed = [f for f in failed if f.shed]
    if shed:
        # Whatever else failed, a turn at a busy upstream is what a retry can get.
        waits = [int(f.retry_after) for f in shed if f.retry_after]
        return AtCapacity(
            "; ".join(f.error or "" for f in shed), tried=tried, retry_after=min(waits, default=1)
        )
    if failed and all(f.status in BUSY for f in failed):
        answers = [f.answer for f in failed if f.answer is not None]
        if len(answers) == len(failed):
            return shortest_wait(answers)
        waits = [w for f in failed if (w := retry_seconds(f.retry_after)) is not None]
        extra: dict[str, Any] = {"tried": tried}
        if waits:
            extra["retry_after"] = min(waits)
        return RateLimited(f"every candidate model is rate limited: {names}", **extra)
    if failed and all(f.status == UNAVAILABLE for f in failed):
        waits = [w for f in failed if (w := retry_seconds(f.retry_after)) is not None]
        if waits:  # the SDKs wait that long before they retry, as they would for one
            return UpstreamsUnavailable(
                f"every candidate model is unavailable for now: {names}",
                tried=tried,
                retry_after=min(waits),
            )
    if failed and all(f.overloaded or f.status == OVERLOADED for f in failed):
        # Said as Anthropic says it, however each said it: its SDK raises OverloadedError.
        return Overloaded(f"every candidate model is overloaded: {names}", tried=tried)
    if failed and all(f.overloaded or f.status in WAIT_A_WHILE for f in failed):
        # Busy each in its own way (one rate limited, one overloaded, one unavailable):
        # a retry after the shortest wait may be served, and the SDKs wait as told.
        waits = [w for f in failed if (w := retry_seconds(f.retry_after)) is not None]
        wait: dict[str, Any] = {"retry_after": min(waits)} if waits else {}
        if any(f.status == RATE_LIMITED for f in failed):
            said = f"every candidate model is rate limited or overloaded: {names}"
            return RateLimited(said, tried=tried, **wait)
        if waits:
            said = f"every candidate model is overloaded or unavailable for now: {names}"
            return UpstreamsUnavailable(said, tried=tried, **wait)
    refusals = [f.answer for f in failed if f.status == REFUSED_REQUEST and f.answer]
    if failed and len(refusals) == len(failed):
        return refusals[-1]  # as it came: the client's to read
    too_long = [f.answer for f in failed if f.kind == "context_length" and f.answer]
    if failed and len(too_long) == len(failed):
        return too_long[-1]  # the client's prompt, too long for every model: its 400
    if failed and all(f.gateway_key for f in failed):
        # The operator's to fix: said as it is, not as the client's request failing.
        return GatewayKeyRefused(failed[-1].error or "", tried=tried)
    if failed and all(f.error == "timeout" for f in failed):
        return UpstreamTimeout(f"no upstream answered in time; tried {names}", tried=tried)
    # How each failed, in the message too: an SDK's exception shows the message, not `tried`.
    how = ", ".join(f"{f.model} ({f.kind or 'failed'})" for f in failed)
    return UpstreamError(f"no upstream could serve the request; tried {how}", tried=tried)
