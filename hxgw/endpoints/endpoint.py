"""What a route is: its path upstream, the model it needs, and what the steps of its
chain must know of its requests and answers. Each is a field here, so that a route is
described in one place (hxgw.endpoints.table), not by its name in the steps' own tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hxgw.config import Mode
from hxgw.config.body_limits import Family
from hxgw.upstream.affinity import Kind

Dialect = Literal["openai", "anthropic"]
"""Whose API a route speaks: the key header it takes and the shape of its errors."""
Guard = Literal["operator", "metrics"]
"""Who may call an operator's route that shows every model, group and key: one with an
unrestricted client key or the metrics key (`operator`); the same where `metrics.auth`
asks it, anyone else (`metrics`)."""


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """How a whole stream of a route ends. The upstream's own error event ends any."""

    events: tuple[bytes, ...] = ()
    """Its final events, by their `event:` name or by their data object's own `type`
    (for an upstream that sends no event lines)."""
    done: bool = True
    """Whether `data: [DONE]` ends it: OpenAI's streams, not Anthropic's."""


@dataclass(frozen=True, slots=True)
class Listing:
    """A list the gateway pages itself for a key that may see only its own objects."""

    most: int
    """The most items a page may hold (OpenAI's API reference)."""
    default: int
    """A page's items when the client names no `limit`."""
    ordered: bool
    """Whether the client may ask for it oldest first (`order=asc`)."""


# eq=False: an endpoint is one of the table's, hashed and compared as itself, cheaply.
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Endpoint:
    name: str
    method: str
    upstream_path: str
    """Where the upstream serves it; empty for the gateway's own routes."""
    mode: Mode | None
    """The model mode this endpoint needs; None for endpoints that take no model."""
    dialect: Dialect = "openai"
    bound: Kind | None = None
    """What the id in the path (`{id}` in upstream_path) is bound to; None without one."""
    held: bool = False
    """Whether it works on objects an upstream holds (files, batches), which carry no model:
    it goes to an upstream, not to a model of a group."""
    raw_answer: bool = False
    """Whether the answer is the object's bytes (a file's content), with no ids to rebind."""
    family: Family = "json"
    """Its body: JSON, held whole, or an upload (multipart/form-data) of audio, images or
    files, streamed; each family has its size limit (`limits` in gateway.yaml)."""
    billed: bool = True
    """Whether it uses tokens. Counting them (Anthropic's count_tokens, free there) does
    not, nor listing models, nor a call on a response, file or batch made before: their
    answers may hold a `usage` (a response's, a batch's, a file's own text), which was
    billed when it was made, or never was the gateway's to bill (a background response's
    is billed apart, once: hxgw.pipeline.billing.background). Such a route reserves and bills
    none, and counts against a key's limits as a request."""
    writes: bool = True
    """Whether a model writes its answer, which is reserved for and counted as a
    completion. Embeddings, moderations and rerank answer vectors or scores: their
    answer's size is no completion (a moderation's categories came to 256 tokens)."""
    choices: bool = False
    """Whether its answer is choices, each ending with its `finish_reason`: `n` of them
    (for each prompt of a legacy completion given several)."""
    copies: bool = False
    """Whether its body's `n` asks for that many answers that are no choices (images):
    each is reserved for, as a choice is."""
    prompt: str | None = None
    """The body's field its prompt is in, whose type the gateway checks
    (hxgw.pipeline.shapes): an upstream may answer a wrong one with a 500."""
    stream_end: StreamEnd | None = None
    """How a whole stream of it ends; None: it is relayed to its end, however it ends."""
    listing: Listing | None = None
    """How it is paged for a key's own objects; None: it lists nothing a key owns."""
    makes: bool = False
    """Whether it makes an object upstream (a file, a batch): recorded as its key's own,
    or the key could never reach it again."""
    guarded: Guard | None = None
    """Who may call it, of the operator's routes; None: anyone (a probe, a monitor)."""
