"""The per-request object every step reads and writes.

One context is made per request and carried down the chain; a step's
docstring says which fields it reads and which it writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hxgw.config import ClientKey, Model
from hxgw.endpoints import Endpoint, anthropic_client
from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.rebind import Rebind
from hxgw.routing.decision import Decision
from hxgw.routing.health import ModelHealth
from hxgw.state import GatewayState
from hxgw.upstream import UpstreamResponse
from hxgw.upstream.affinity import Bound

if TYPE_CHECKING:
    from hxgw.pipeline.uploads.upload import Upload


UNANSWERED = ("client_gone", "cancelled", "upstream_timeout")
"""The outcomes of a request the upstream had, but whose answer never came: the client
left, a stop cut it, or the model ran out of time. The provider read its prompt (and bills
it), whatever it did next."""


@dataclass(slots=True)
class Reply:
    """An upstream response that has produced its first body byte and is ready to relay.

    This and the context are made with positional arguments on the hot path: calling
    a class with keywords builds a dict, about 2k instructions more."""

    response: UpstreamResponse
    first_chunk: bytes
    model: Model
    health: ModelHealth
    token: int
    """The health book's name for this attempt (`ModelHealth.started`)."""

    def is_event_stream(self) -> bool:
        return self.response.content_type == "text/event-stream"


Source = Literal["reported", "estimated", "none"]


@dataclass(frozen=True, slots=True)
class Used:
    """What a request used: its tokens, their cost, and where the count came from
    (worked out by `pipeline.billing.usage.used`)."""

    prompt: int
    completion: int
    cost: float
    source: Source
    cached: int = 0
    """Of the prompt, the tokens the provider read from its cache, as it reported them."""
    cache_written: int = 0
    """Of the prompt, the tokens written to the cache (Anthropic's cache_creation)."""
    reasoning: int = 0
    """Of the completion, the tokens the model reasoned in (reported by OpenAI's APIs)."""

    @property
    def total(self) -> int:
        return self.prompt + self.completion


Next = Callable[["RequestContext"], Awaitable[None]]
"""The rest of the chain, as a step calls it: `call_next(ctx)`."""
Step = Callable[["RequestContext", Next], Awaitable[None]]
"""One step of the request path: `step(ctx, call_next)` (see hxgw.pipeline.chain)."""


@dataclass(slots=True)
class RequestContext:
    exchange: Exchange
    state: GatewayState
    endpoint: Endpoint
    task: asyncio.Task[Any] | None = None  # the one serving the request
    started: float = field(default_factory=time.perf_counter)
    request_id: str = ""
    key: ClientKey | None = None
    body: dict[str, Any] | None = None
    raw_body: bytes = b""
    stream: bool = False
    """Asked for by the body's `stream`, or answered as events (relay sets it then)."""
    group: str | None = None
    pinned: bool = False
    candidates: tuple[Model, ...] = ()
    decision: Decision | None = None
    stream_failed: bool = False
    """The answer was cut short by the upstream or by the gateway's timeouts."""
    model_failed: bool = False
    """It was cut by the model's failure (not by the total timeout): its health hears it."""
    upstream_bodies: Any = None
    """What each candidate is sent: `upstream_bodies.for_model(model)` is that model's
    body, bytes for a held body (transform.UpstreamBodies, transform.FixedBody), a
    streamed one for uploads (upload.Upload, file_upload.AsSent: failover.attempt hands
    those to send_upload). Any: the two kinds share no type."""
    upstream_path: str | None = None
    """Where the request goes upstream when not the endpoint's fixed path: a route on
    one object, with its upstream id and the client's query."""
    rebind: Rebind | None = None
    """How the answer's ids of upstream state become the ids the client sees."""
    named: tuple[tuple[Bound, str | None], ...] = ()
    """The files and batches the request names (the path's id, a batch's input file, a
    list's `after`), bound to their upstream, each with the parameter that named it
    (hxgw.pipeline.held.bound_upstream)."""
    upload: Upload | None = None
    """The request's multipart form, for the upload routes (hxgw.pipeline.form)."""
    reply: Reply | None = None
    trying: Model | None = None
    """The candidate that has the request and has not answered yet (none once one has;
    not one that could not be connected to): what a request whose answer never came has
    cost (`UNANSWERED`)."""
    served_by: str | None = None
    """The name of `reply`'s model, which the access line and metrics read."""
    failovers: int = 0
    """Candidates that failed before the one that answered (all that were tried, when
    none did)."""
    status: int = 0
    bytes_out: int = 0
    ttfb: float | None = None
    queued: float | None = None
    """Seconds spent waiting for a turn at busy upstreams; None when there was no wait."""
    outcome: str = "ok"
    usage: bytes = b""
    """The upstream's `usage` object and what follows it, as it came."""
    hidden_usage: bool = False
    """The gateway asked the upstream for the stream's usage chunk, which the client did
    not: relay keeps it for the ledger and from the client."""
    closer: bytes = b""
    """What ends the SSE event the relayed stream leaves open, so that an error event
    after it is an event of its own (kept by events.relay_events)."""
    events: int = 0
    """SSE `data:` lines relayed: a stream's completion, estimated, when it has no usage."""
    answered: bool = False
    """The stream's end was relayed: a client that leaves after it (the sync OpenAI SDK
    closes at `[DONE]`, before the body's end) has the whole answer, and is not gone."""
    used: Used | None = None
    """What the request used, worked out once when it ends (`usage.used`)."""
    limit_headers: dict[str, str] | None = None
    """The key's x-ratelimit-* headers, which the answer carries, relayed or the gateway's
    own (`apply_limits` sets them for a key with limits)."""
    # perf_counter marks for the gateway's own share of the time to first byte
    sent_at: float | None = None
    upstream_first_at: float | None = None
    client_first_at: float | None = None

    def cancelled(self) -> None:
        """The request's task was cancelled: its client left, unless a step said why or
        the client had the whole answer (it may leave while the limits reconcile)."""
        if self.outcome == "ok" and not self.exchange.ended and not self.answered:
            self.outcome = "client_gone"

    def speaks_anthropic(self) -> bool:
        """Whether the client is Anthropic's (hxgw.endpoints.anthropic_client)."""
        if self.endpoint.dialect == "anthropic":
            return True
        if self.exchange.header("anthropic-version") is None:
            return False  # asked first: every OpenAI request is told by it alone
        return anthropic_client(self.endpoint, self.exchange.path, says_version=True)

    def unanswered_by(self) -> Model | None:
        """The model that had the request when its answer never came (`UNANSWERED`): its
        prompt is billed at that model's price. None for a request that was answered."""
        return self.trying if self.reply is None and self.outcome in UNANSWERED else None

    def model_named(self) -> str | None:
        """The model its records name (access line, metrics, ledger row): the one that
        answered, else `unanswered_by`."""
        called = self.unanswered_by()
        return called.name if called is not None else self.served_by

    def overhead(self) -> float | None:
        """Time to first byte the gateway added: before the first upstream request went
        out, and between the upstream's first byte and the client's."""
        if self.sent_at is None or self.upstream_first_at is None or self.client_first_at is None:
            return None
        return (self.sent_at - self.started) + (self.client_first_at - self.upstream_first_at)
