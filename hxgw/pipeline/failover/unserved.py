"""Answers that begin as no answer: a stream that opens with an error, a 200 that
holds only an error, an upstream without the model, a prompt longer than the model's
context, or LiteLLM refusing the gateway's own key. Another candidate of the group may
serve the request (hxgw.pipeline.failover.attempt sets each aside as a `Failure`)."""

from __future__ import annotations

from hxgw import jsonio
from hxgw.pipeline.answer.error_answer import MAX_ANSWER, error_of, said, summary
from hxgw.pipeline.answer.opening import EVENT_STREAM, opening_error
from hxgw.pipeline.failover.failures import Failure
from hxgw.upstream import UpstreamResponse


def refused_gateway_key(response: UpstreamResponse, first: bytes) -> str | None:
    """For a 400: LiteLLM without a database answers a key other than its master key
    with 400 "No connected db." That is the gateway's misconfiguration, not the
    client's fault. Its error's `type` says so, not the bytes: a client's own 400 may
    repeat what it sent, "no_db_connection" too."""
    if b"no_db_connection" in first and error_of(first).get("type") == "no_db_connection":
        response.close()
        return (
            "the upstream refused the gateway's own key (LiteLLM without a database "
            "accepts only its master key: set HX_UPSTREAM_KEY to it)"
        )
    return None


_LITELLM_MISSING = b"Invalid model name passed in model="
_ANTHROPIC_MISSING = b"not_found_error"
"""Anthropic's 404 for a model it does not have (a retired one): its error's `type`, and
a message that reads `model: <id>`; LiteLLM passes it on inside its own error's message."""
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
    400 "Invalid model name passed in model=...", Anthropic's 404 `not_found_error`
    "model: ..."), where the registry names one it lacks (or one retired since);
    or a prompt longer than the model's context (its `max_context` unset or too large).
    Another candidate of the group may serve the request; None when the answer is one to
    relay."""
    status = response.status
    if status == 200 and response.content_type == EVENT_STREAM:
        opened = opening_error(first, ended=response.at_eof())
        if opened is None:
            return None
        return Failure(model, opened.said, kind="stream_error", overloaded=opened.overloaded)
    if status == 200 and b'"error"' in first and (in_answer := _error_in_answer(first)):
        told, overloaded = in_answer
        return Failure(
            model,
            f"the upstream answered 200 with an error: {told}",
            kind="error_200",
            overloaded=overloaded,
        )
    if status == 400 and any(mark in first for mark in _TOO_LONG):
        error = error_of(first)  # parsed once: its code, its message and the summary
        # Its texts alone: str() of a message nested 1000 levels deep had raised.
        texts = " ".join(t for t in (error.get("code"), error.get("message")) if isinstance(t, str))
        if any(mark.decode() in texts for mark in _TOO_LONG):
            too_long = f"the prompt is too long for the model: {summary(first, error)}"
            return Failure(model, too_long, status, kind="context_length")
    if status == 404 and b"model_not_found" in first:
        error = error_of(first)
        missing = error.get("code") == "model_not_found"
    elif status == 404 and _ANTHROPIC_MISSING in first:
        error = error_of(first)
        missing = _anthropic_missing(error)
    elif status == 400 and _LITELLM_MISSING in first:
        error = error_of(first)
        message = error.get("message")
        missing = isinstance(message, str) and _LITELLM_MISSING.decode() in message
    else:
        return None
    if not missing:
        return None
    why = summary(first, error) if len(first) <= MAX_ANSWER else "model_not_found"
    return Failure(model, f"the upstream has no such model: {why}", status, kind="model_missing")


_ANSWERS = ("choices", "output", "content", "data", "results")
"""What the answer of each route holds (chat and completions, responses, messages,
embeddings and lists, rerank and moderations): a body with none of them is no answer."""


def _anthropic_missing(error: dict[str, object]) -> bool:
    """Whether an upstream's 404 error object is Anthropic's for a model it lacks, as it
    came or as LiteLLM wraps it (its message quoting Anthropic's body)."""
    message = error.get("message")
    if not isinstance(message, str):
        return False
    if error.get("type") == "not_found_error":
        return message.startswith("model: ")
    # As JSON or as a Python dict's repr: quoted either way.
    return "not_found_error" in message and ('"model: ' in message or "'model: " in message)


def _error_in_answer(first: bytes) -> tuple[str, bool] | None:
    """What a 200 JSON body says when it is an error and no answer (`{"error": ...}`, as
    some providers send through a proxy), which the SDKs take for an empty answer, and
    whether it is Anthropic's `overloaded_error`; None for an answer, or a body not whole
    in its first read."""
    try:
        body = jsonio.loads(first)
    except jsonio.DecodeError:
        return None
    if not isinstance(body, dict) or not body.get("error") or any(k in body for k in _ANSWERS):
        return None
    error = body["error"]
    message = error.get("message") if isinstance(error, dict) else error
    overloaded = isinstance(error, dict) and error.get("type") == "overloaded_error"
    try:
        return said(message), overloaded
    except RecursionError:  # nested deeper than Python prints: the request had been a 500
        return first.decode("utf-8", "replace")[:300], overloaded
