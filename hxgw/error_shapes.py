"""An error's body in each API family's shape: Anthropic's `{"type": "error", "error":
{"type", "message"}, "request_id"}` for its routes, and an upstream's error that is not in
its route's shape (an HTML page from a proxy, OpenAI's shape on an Anthropic route) put
into it, so that each SDK reads the message where it looks for it.
"""

from __future__ import annotations

from hxgw import jsonio


def anthropic_error(status: int, message: str, request_id: str) -> bytes:
    kind = ANTHROPIC_TYPES.get(status) or (
        "invalid_request_error" if 400 <= status < 500 else "api_error"
    )
    error = {"type": kind, "message": message}
    return jsonio.dumps({"type": "error", "error": error, "request_id": request_id})


ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",  # Anthropic's own status for it
}
"""Anthropic's error type for a status; any other is an `invalid_request_error` for a
4xx (as Anthropic's error reference says of the codes it does not list), else an
`api_error`."""


def anthropic_shaped(status: int, body: bytes, request_id: str) -> bytes:
    """An upstream's error body in Anthropic's shape, its own if it was in it already:
    some LiteLLM versions answer their `/v1/messages` errors in OpenAI's shape."""
    try:
        parsed = jsonio.loads(body)
    except jsonio.DecodeError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if parsed.get("type") == "error" and isinstance(error, dict):
            return body
        if isinstance(error, dict):
            error = error.get("message")
        said = error or parsed.get("detail") or parsed.get("message")
        if said and not isinstance(said, str):  # FastAPI's 422 `detail` is a list
            try:
                said = jsonio.dumps_deep(said).decode()
            except jsonio.EncodeError:
                said = None  # nested past what can be written: the body as it came
        message = said or body.decode("utf-8", "replace")
    else:
        message = body.decode("utf-8", "replace").strip() or f"upstream status {status}"
    return anthropic_error(status, message[:1000], request_id)


def openai_shaped(status: int, body: bytes) -> bytes:
    """An upstream's error that is not JSON (a proxy's HTML page, plain text) in OpenAI's
    shape, which the SDKs read; a JSON object goes as it came."""
    try:
        if isinstance(jsonio.loads(body), dict):
            return body
    except jsonio.DecodeError:
        pass
    said = body.decode("utf-8", "replace").strip()[:1000] or f"upstream status {status}"
    error = {"message": said, "type": "upstream_error", "param": None, "code": f"http_{status}"}
    return jsonio.dumps({"error": error})
