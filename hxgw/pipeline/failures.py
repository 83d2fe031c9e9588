"""What a failed candidate tells the client: the record of each failure, the
upstream's own error answer, and the one error the client gets when none served.

A candidate whose upstream was at its cap makes the answer a 503 that says so,
with a Retry-After: the gateway's own overload, which a retry soon can get past.
A retryable error from the only candidate goes to the client as the upstream
said it (status, body, rate-limit headers): there was no failover to report,
and an SDK backs off by what the upstream said. When every candidate answered
429 or 529, the client gets the last one's answer with the shortest wait any of them
asked for; when every one answered 503 and one said how long to wait, the gateway's own
503 with the shortest wait. Otherwise the gateway's own 502 or 504 lists what was tried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hxgw import jsonio
from hxgw.config import Config, Model
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
from hxgw.pipeline.opening import EVENT_STREAM, opening_error
from hxgw.pipeline.upstream_headers import passed_headers
from hxgw.pipeline.waits import retry_seconds, shortest_wait, wait_ms
from hxgw.upstream import UpstreamResponse

RETRYABLE_STATUS = frozenset({401, 403, 408, 429, *range(500, 600)})
OVERLOADED = 529
UNAVAILABLE = 503
BUSY = frozenset({429, OVERLOADED})
"""Rate limited, or (Anthropic's 529) overloaded: when every candidate says so, the client
gets the last answer as it came, asked to wait only as long as the shortest wait."""
REFUSED_REQUEST = 403
"""Failed over, as a permission a model lacks, but held against no model's health, and
passed on when every candidate gave it: some upstreams say with it that the prompt was
flagged (OpenRouter's moderation), which every model would refuse alike."""
TransportError = (OSError, TimeoutError)
# An upstream's error body is passed on whole or not at all; OpenAI's are under 1 KiB.
MAX_ANSWER = 64 * 1024


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


def refused_gateway_key(response: UpstreamResponse, first: bytes) -> str | None:
    """For a 400: LiteLLM without a database answers a key other than its master key
    with 400 "No connected db." That is the gateway's misconfiguration, not the
    client's fault. Its error's `type` says so, not the bytes: a client's own 400 may
    repeat what it sent, "no_db_connection" too."""
    if b"no_db_connection" in first and _error_of(first).get("type") == "no_db_connection":
        response.close()
        return (
            "the upstream refused the gateway's own key (LiteLLM without a database "
            "accepts only its master key: set HX_UPSTREAM_KEY to it)"
        )
    return None


_LITELLM_MISSING = b"Invalid model name passed in model="
_TOO_LONG = (
    b"context_length_exceeded",
    b"ContextWindowExceededError",
    b"prompt is too long",
    b"exceed context limit",
)
"""How OpenAI (its code), LiteLLM and Anthropic (their messages) say a prompt is longer
than the model's context (Anthropic's last: the prompt and `max_tokens` together):
another candidate, with a longer one, may take it."""


def unserved(model: str, response: UpstreamResponse, first: bytes) -> Failure | None:
    """An answer that begins as no answer: a stream that opens with an error event (or
    ends before any of its answer: empty, or comments and preamble only), or
    the upstream saying it has no such model (OpenAI's 404 `model_not_found`, LiteLLM's
    400 "Invalid model name passed in model=..."), where the registry names one it lacks;
    or a prompt longer than the model's context (its `max_context` unset or too large).
    Another candidate of the group may serve the request; None when the answer is one to
    relay."""
    status = response.status
    if status == 200 and response.content_type == EVENT_STREAM:
        opened = opening_error(first, ended=response.at_eof())
        if opened is None:
            return None
        return Failure(model, opened.said, kind="stream_error", overloaded=opened.overloaded)
    if status == 200 and b'"error"' in first and (said := _error_in_answer(first)):
        return Failure(model, f"the upstream answered 200 with an error: {said}", kind="error_200")
    if status == 400 and any(mark in first for mark in _TOO_LONG):
        error = _error_of(first)  # parsed once: its code, its message and the summary
        said = f"{error.get('code')} {error.get('message')}"
        if any(mark.decode() in said for mark in _TOO_LONG):
            too_long = f"the prompt is too long for the model: {_summary(first, error)}"
            return Failure(model, too_long, status, kind="context_length")
    if status == 404 and b"model_not_found" in first:
        error = _error_of(first)
        missing = error.get("code") == "model_not_found"
    elif status == 400 and _LITELLM_MISSING in first:
        error = _error_of(first)
        message = error.get("message")
        missing = isinstance(message, str) and _LITELLM_MISSING.decode() in message
    else:
        return None
    if not missing:
        return None
    said = _summary(first, error) if len(first) <= MAX_ANSWER else "model_not_found"
    return Failure(model, f"the upstream has no such model: {said}", status, kind="model_missing")


_ANSWERS = ("choices", "output", "content", "data", "results")
"""What the answer of each route holds (chat and completions, responses, messages,
embeddings and lists, rerank and moderations): a body with none of them is no answer."""


def _error_in_answer(first: bytes) -> str | None:
    """What a 200 JSON body says when it is an error and no answer (`{"error": ...}`, as
    some providers send through a proxy), which the SDKs take for an empty answer; None
    for an answer, or a body not whole in its first read."""
    try:
        body = jsonio.loads(first)
    except jsonio.DecodeError:
        return None
    if not isinstance(body, dict) or not body.get("error") or any(k in body for k in _ANSWERS):
        return None
    error = body["error"]
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:300]


def _error_of(body: bytes) -> dict[str, Any]:
    """The `error` object of an upstream's error body; {} when it has none."""
    try:
        error = jsonio.loads(body).get("error")
    except (jsonio.DecodeError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


async def read_answer(
    response: UpstreamResponse, model: Model, first: bytes = b"", secret: str | None = None
) -> UpstreamAnswer | None:
    """The upstream's error response as the client may get it (after the `first` bytes
    read of it already), read briefly; None when it cannot be read whole (the message for
    logs is then missing too). The gateway's own key for that upstream (`secret`), should
    the answer quote it (a 401 that says which key it refused), is masked: the client,
    the gateway's own error and the log get only its last four characters."""
    try:
        async with asyncio.timeout(2):
            data = first + await response.read(MAX_ANSWER + 1 - len(first))
    except TransportError:
        return None
    finally:
        response.release()
    if len(data) > MAX_ANSWER:
        return None
    data = masked(data, secret)
    headers = passed_headers(response)
    headers["X-HX-Model"] = model.name
    return UpstreamAnswer(_summary(data), answer_status=response.status, headers=headers, body=data)


def upstream_key(config: Config, model: Model) -> str | None:
    """The gateway's key for the model's upstream (None for one a reload removed): what
    an upstream's error must not show whole (`masked`)."""
    upstream = config.upstreams.get(model.upstream)
    return upstream.key if upstream is not None else None


def masked(data: bytes, secret: str | None) -> bytes:
    """`data` with the gateway's key for an upstream (`secret`) cut to its last four
    characters, should an upstream's error quote it."""
    if secret and secret.encode() in data:
        return data.replace(secret.encode(), b"..." + secret[-4:].encode())
    return data


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
    error = _error_of(answer.body)
    return "insufficient_quota" not in (error.get("code"), error.get("type"))


def _summary(data: bytes, error: dict[str, Any] | None = None) -> str:
    """The upstream's own error message, cut short, for logs and the gateway's errors
    (from its `error` object when that was parsed already)."""
    if error and "message" in error:
        return str(error["message"])[:300]
    try:
        parsed = jsonio.loads(data)
        message = parsed["error"]["message"] if isinstance(parsed.get("error"), dict) else parsed
        return str(message)[:300]
    except (jsonio.DecodeError, AttributeError, KeyError, TypeError):
        return data.decode("utf-8", "replace")[:300]


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
    return UpstreamError(f"no upstream could serve the request; tried {names}", tried=tried)
