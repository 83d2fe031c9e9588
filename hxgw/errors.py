"""The gateway's error hierarchy and its OpenAI-shaped JSON.

Every failure a client can see is one of these classes; the status and the
OpenAI error `type` are class attributes so that raising sites only say what
went wrong, never how it is rendered.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar

from hxgw import jsonio
from hxgw.error_shapes import anthropic_error, anthropic_shaped


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when `word` looks like a typo of one of `choices`, else ''."""
    names = list(choices)
    # A ratio of 0.75 needs a word under 5/3 of a name's length: a longer one is no typo,
    # and a client's megabytes-long one would hold the event loop for seconds in difflib.
    if len(word) > 2 * max(map(len, names), default=0):
        return ""
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.75)
    if not close:  # two letters swapped in a short name (rmp): too unlike for the ratio
        close = [name for name in names if len(name) > 2 and sorted(name) == sorted(word)]
    return f" (did you mean {close[0]!r}?)" if close else ""


LONGEST_SDK_WAIT = 60.0
"""The longest Retry-After a client SDK should sleep on inside one call. OpenAI's python
SDK ignores a longer one; Anthropic's and both node SDKs sleep whatever it says."""


class GatewayError(Exception):
    """A failure that ends a request with an OpenAI-style error body."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None
    retry_helps: ClassVar[bool] = True
    """False where no retry within the client's call can succeed: its answer says
    `x-should-retry: false`, which the OpenAI and Anthropic SDKs obey before any other
    rule (they retry a 429 or a 5xx otherwise, sleeping what Retry-After says)."""

    def __init__(self, message: str, *, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        # Some echo a client's value: a 1 MB model name is not sent back whole.
        self.message = message if len(message) <= 2000 else f"{message[:2000]}..."
        self.param = param
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}

    def to_json(self) -> bytes:
        return jsonio.dumps(self.to_dict())

    def to_anthropic_json(self, request_id: str) -> bytes:
        """The same failure in Anthropic's shape, for its routes: its SDK picks the
        exception class by the status, and reads `error.type`, `error.message` and the
        `request_id` that Anthropic puts in every error body."""
        return anthropic_error(self.status, self.message, request_id)


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class OperatorOnly(Forbidden):
    """A key that may call the API but not the operator's routes."""

    code = "operator_key_required"


class BatchNotAllowed(Forbidden):
    """A key whose groups, budget or tokens per minute a batch would run past."""

    code = "batch_not_allowed"


class BackgroundNotAllowed(Forbidden):
    """A background response for a key whose budget or tokens per minute it would run past."""

    code = "background_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow
        """The methods the path takes, for the Allow header."""


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UriTooLong(GatewayError):
    status = 414
    type = "invalid_request_error"
    code = "uri_too_long"


class HeaderTooLarge(GatewayError):
    status = 431
    type = "invalid_request_error"
    code = "request_header_fields_too_large"


class UnsupportedEncoding(GatewayError):
    """A request body in a content coding the gateway does not read: the 415 names
    those it does in Accept-Encoding (RFC 9110, 15.5.16)."""

    status = 415
    type = "invalid_request_error"
    code = "unsupported_content_encoding"


class VersionNotSupported(GatewayError):
    """A request line of an HTTP version other than 1.0 and 1.1 (an HTTP/2 client that
    did not negotiate it, a scanner): answered in kind, it would be framed as HTTP/1."""

    status = 505
    type = "invalid_request_error"
    code = "http_version_not_supported"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class AddressLockedOut(RateLimited):
    """Too many bad keys from the client's address (hxgw.keys.guard): every key is
    refused there for a while but those already used from it. An SDK that slept the
    lockout away inside the call would hang a minute on a mistyped key, and as long on
    the right key that follows it."""

    retry_helps = False


class KeyLimited(RateLimited):
    """A client key's own limit (hxgw.keys.limits) refused the request: the 429 carries
    the key's x-ratelimit-* headers and Retry-After, and the body OpenAI's SDKs expect."""

    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, headers: dict[str, str], body: bytes) -> None:
        super().__init__(message)
        self.headers = headers
        self.body = body

    def to_json(self) -> bytes:
        return self.body


class KeyOverBudget(KeyLimited):
    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamError(GatewayError):
    """No upstream candidate produced a response."""

    status = 502
    type = "upstream_error"
    code = "upstream_unavailable"


class Overloaded(UpstreamError):
    """Every candidate said it was overloaded (Anthropic's 529, or its `overloaded_error`
    opening a stream): a retry soon may find one that is not."""

    status = 529
    type = "overloaded_error"
    code = "overloaded"


class UpstreamAnswer(UpstreamError):
    """An upstream's own error response, which the client gets as it came.

    The gateway only answers in its own words when it has something to add: with
    one candidate there is no failover to report, and SDKs back off by the
    upstream's status, body and rate-limit headers, which a gateway error would
    hide. The response goes out with `answer_status`; `status` is the class's."""

    def __init__(
        self, message: str, *, answer_status: int, headers: dict[str, str], body: bytes
    ) -> None:
        super().__init__(message)
        self.answer_status = answer_status
        self.headers = headers
        """Only the ones a client may see (`pipeline.answer.upstream_headers.passed_headers`)."""
        self.body = body

    def to_json(self) -> bytes:
        return self.body

    def to_anthropic_json(self, request_id: str) -> bytes:
        """The body as it came when the upstream spoke Anthropic's shape; else (an
        OpenAI-shaped upstream, an HTML error page) its message in that shape."""
        return anthropic_shaped(self.answer_status, self.body, request_id)


class GatewayKeyRefused(UpstreamError):
    """Every candidate's upstream refused the gateway's own key: the operator's to fix,
    which no retry of the client's can."""

    code = "gateway_key_refused"
    retry_helps = False


class UpstreamsUnavailable(UpstreamError):
    """Every candidate said it is unavailable for a while (503 with a Retry-After)."""

    status = 503


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class TotalTimeout(UpstreamTimeout):
    """The request's total timeout ran out while the upstream was answering: the
    gateway's own limit, held against no model (a healthy model's long answer meets it)."""


class LoopDetected(GatewayError):
    """A request this gateway sent upstream came back to it."""

    status = 508
    type = "upstream_error"
    code = "loop_detected"


class Unavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "unavailable"


class AtCapacity(Unavailable):
    """Every candidate's upstream was at its cap and the request could not wait for a
    turn: the gateway's own overload, said so, with a Retry-After."""

    code = "gateway_at_capacity"


class ConfigError(Exception):
    """A config file is wrong; the message names the file and the key path."""
