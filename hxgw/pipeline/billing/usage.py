"""What a request used: its tokens and their cost, as the upstream reported them or,
when it did not, as estimated.

The upstream reports `usage` at the end of a body and in the last chunk of a
stream that asked for it (`stream_options.include_usage`). A stream the client
left is cancelled upstream at once, so it has no final usage: its completion is
estimated at one token per event relayed (OpenAI's streams send a token or a
few per event), its prompt from the request's size. A client that left before any
answer came pays the prompt the upstream had read. The source is kept with the
figures, so a bill can tell the two apart.
"""

from __future__ import annotations

from typing import Any

from hxgw.config import KeyLimits, Model
from hxgw.config.schema import DEFAULT_COMPLETION
from hxgw.endpoints import COMPLETIONS, Endpoint
from hxgw.pipeline.billing.reported_usage import reported_parts, reported_tokens
from hxgw.pipeline.context import RequestContext, Source, Used
from hxgw.pipeline.rebind import background_response
from hxgw.routing.prompt_size import MAX_TOKENS, asked, largest_answer, measure
from hxgw.usage.schema import LEFT

BYTES_PER_TOKEN = 4
"""A request body's bytes per prompt token: OpenAI's rule of thumb for English, and an
overestimate for a JSON body, which is what a reservation wants."""
LARGE_BODY = 64 * 1024
"""Below this a body counts at the text's rate, whole (16k tokens at most): not worth a
walk through it for the media it sends inline."""
MEDIA_CHARACTERS_PER_TOKEN = 32
"""Inline media's base64 characters per prompt token. A provider counts an image by its
pixels (OpenAI's high detail at most about 1.5k tokens, Anthropic's about 1.6k), audio by
its seconds, a document by its pages: at the text's rate a 600 KB photo would reserve
150k tokens, more than many keys' TPM, and be refused for good. At this one it counts as
19k, still more than a provider bills for it; a PDF of 50 pages (3 MB or so) as 100k."""
UPLOAD_BYTES_PER_TOKEN = 512
"""An upload's (audio, images) bytes per prompt token, for the reservation and a bill
without a usage. A provider counts audio by its seconds (gpt-4o-transcribe about 1k
tokens a minute: some 2 a KB of 64 kbit/s MP3, 0.5 of 16 kHz WAV) and an image by its
pixels. Each upload had counted as one token, so a burst of them ran past a budget; at
the text's rate 4 MiB of audio would be a million tokens, refused for good."""


NOTHING = Used(0, 0, 0.0, "none")


def used(ctx: RequestContext) -> Used:
    """What the request used, worked out once, when it has ended, and kept in ctx.used:
    the first step to ask fixes it. For a key with limits that is `apply_limits`, as the
    rest of the chain returns (the status and outcome of an error set for it before
    `render_errors` answers); else `record_metrics`, which the access line and the
    ledger's row then read."""
    if ctx.used is not None:
        return ctx.used
    reply, called = ctx.reply, ctx.unanswered_by()
    if called is not None:
        return _unanswered(ctx, called)
    if reply is None or not ctx.endpoint.billed:
        ctx.used = NOTHING  # no upstream served it, or it used no tokens
        return NOTHING
    if background_response(ctx.rebind) is not None:
        ctx.used = NOTHING  # a background response: billed once, on its own row
        return NOTHING
    counts = reported_tokens(ctx.usage) if ctx.usage else None
    if counts is not None:
        prompt, completion = counts
        source: Source = "reported"
        cut = ctx.outcome in LEFT or ctx.stream_failed
        if cut and _only_its_start(ctx.usage):
            # A stream cut short has only the usage it began with (Anthropic's
            # message_start says 1 output token; a bridge from another API's, as LiteLLM's,
            # 0 input tokens too): what was relayed, and the request's size, say more.
            if completion < ctx.events:
                completion, source = ctx.events, "estimated"
            if not prompt:
                prompt, source = estimated_prompt(ctx), "estimated"
    elif ctx.status >= 400:
        prompt, completion, source = 0, 0, "none"
    else:
        prompt, source = estimated_prompt(ctx), "estimated"
        streamed = reply.is_event_stream()
        completion = ctx.events if streamed else _written(ctx, reply.response.content_length)
    # The parts a usage reports, kept beside the counts: a provider bills a cache read
    # apart, and an operator checks the bill against them.
    read, written, reasoning = (
        reported_parts(ctx.usage, prompt, completion) if counts is not None else (0, 0, 0)
    )
    cost = cost_of(reply.model, prompt, completion, read, written)
    ctx.used = Used(prompt, completion, cost, source, read, written, reasoning)
    return ctx.used


def cost_of(model: Model, prompt: int, completion: int, read: int = 0, written: int = 0) -> float:
    """What `model` charges for these tokens, a cache's read and written part priced
    apart where its price says how."""
    price = model.price
    if price is None:
        return 0.0
    if price.prices_cache:
        return price.of(prompt, completion, read, written)
    return price.of(prompt, completion)


def _only_its_start(usage: bytes) -> bool:
    """Whether a stream's usage is only the one it opened with (Anthropic's message_start,
    whose whole count comes in message_delta). The other APIs report theirs once the answer
    is whole (OpenAI's usage chunk, the Responses API's response.completed), or as it grows:
    a cut after it takes nothing from it."""
    return b"message_start" in usage and b"message_delta" not in usage


def _unanswered(ctx: RequestContext, model: Model) -> Used:
    """A request `model` had when its answer never came (`UNANSWERED`): its prompt, and
    nothing written yet to count."""
    prompt = estimated_prompt(ctx)
    cost = model.price.of(prompt, 0) if model.price is not None else 0.0
    ctx.used = Used(prompt, 0, cost, "estimated" if prompt else "none")
    return ctx.used


def _written(ctx: RequestContext, length: int | None) -> int:
    """A plain answer's completion without a usage: from its size, at most what the request
    asked for. A client that left mid-body pays for the whole answer: the model had
    written it all before the first byte went."""
    if length is None and ctx.outcome in LEFT:
        return estimated_completion(ctx)  # how much more there was is not known
    size = max(ctx.bytes_out, length or 0)
    return min(size // BYTES_PER_TOKEN + 1, estimated_completion(ctx)) if size else 0


def estimated_prompt(ctx: RequestContext) -> int:
    if not ctx.endpoint.billed:
        return 0
    upload = ctx.upload
    if upload is not None:  # a form's audio or images: what its file weighs, not text
        size = max(upload.received, ctx.exchange.declared_length or 0)
        return size // UPLOAD_BYTES_PER_TOKEN + 1
    size = len(ctx.raw_body)
    if size > LARGE_BODY and ctx.body is not None:
        media = measure(ctx.body).media  # not counted as text is
        return (size - media) // BYTES_PER_TOKEN + media // MEDIA_CHARACTERS_PER_TOKEN + 1
    return size // BYTES_PER_TOKEN + 1


def estimated_completion(ctx: RequestContext) -> int:
    """The most the request asked the model to write, or a default, for each choice it
    asked for; 0 for the routes a model writes nothing for, and requests without a
    body."""
    body = ctx.body
    endpoint = ctx.endpoint
    if body is None or not endpoint.writes or not endpoint.billed:
        return 0  # no body (a call on a response) or no completion
    most = largest_answer(body)
    if not most:
        # As much as the candidate that may write the most can (none said: 256).
        for model in ctx.candidates:
            most = max(most, model.max_output_tokens or DEFAULT_COMPLETION)
        most = most or DEFAULT_COMPLETION
    if endpoint.choices:
        # Each choice may write that much, and all `best_of` are billed.
        most *= choices(body, endpoint, best_of=True)
    elif endpoint.copies:
        most *= max(asked(body.get("n")), 1)
    return min(most, MAX_TOKENS)


def choices(body: dict[str, Any], endpoint: Endpoint, *, best_of: bool = False) -> int:
    """How many choices a request of a route that answers choices asks for: `n` (or
    `best_of`, which the upstream writes and bills but does not send) for each prompt of
    a legacy completion given a list of them (a list of token ids is one prompt)."""
    each = max(asked(body.get("n")), asked(body.get("best_of")) if best_of else 0, 1)
    prompt = body.get("prompt") if endpoint is COMPLETIONS else None
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return each * len(prompt)
    return each


def counting_limits(limits: KeyLimits | None) -> list[str]:
    """The limits of a key that count what its requests use, not only that they came:
    what a request whose use the gateway never sees (a batch, a background response)
    would run past."""
    if limits is None:
        return []
    given = (("a budget", limits.budget), ("tokens per minute", limits.tpm))
    return [what for what, value in given if value is not None]


def estimated_cost(candidates: tuple[Model, ...], prompt: int, completion: int) -> float:
    """The most the request could cost on any of its candidates: failover may move it."""
    # A plain loop: max() over a generator cost three times as much (1.2 µs for two
    # candidates, against 0.35), on every request of a limited key.
    dearest = 0.0
    for model in candidates:
        price = model.price
        if price is not None:
            cost = price.most(prompt, completion)
            if cost > dearest:
                dearest = cost
    return dearest
