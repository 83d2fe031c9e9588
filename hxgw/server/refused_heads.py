"""What the gateway says to a request aiohttp's parser refused (`refusal`), from what it
kept of its head, only the first bytes (`GatewayConnection._head_start`): the version
its request line names, whether its client is Anthropic's (the error shape it reads), and a
body coding cut short; and the 408 of a head that never completed, written by hand.
"""

from __future__ import annotations

import structlog
from aiohttp.http_exceptions import ContentEncodingError, LineTooLong

from hxgw.endpoints import anthropic_client, endpoint_for
from hxgw.errors import (
    BadRequest,
    GatewayError,
    HeaderTooLarge,
    UpstreamTimeout,
    UriTooLong,
    VersionNotSupported,
)
from hxgw.pipeline.client_request import (
    ACCEPT_ENCODING,
    DECODED,
    parser_reason,
    unsupported_coding,
)
from hxgw.pipeline.exchange import SERVER

log = structlog.get_logger("hxgw.server")

H2_PREFACE = b"PRI * HTTP/2"
"""How a client that speaks HTTP/2 without asking first (prior knowledge) opens."""


def refusal(
    status: int, exc: BaseException | None, message: str | None, head: bytes
) -> tuple[GatewayError, dict[str, str]]:
    """The error (and any header it needs) for a request aiohttp answers itself with
    `status`, having raised `exc`, of whose head the first bytes are `head`."""
    if isinstance(exc, ContentEncodingError) and (coding := cut_short(exc)):
        return BadRequest(f"the request body cannot be read: it is not valid {coding}"), {}
    if isinstance(exc, ContentEncodingError):  # br or zstd, without their library
        return unsupported_coding(), {"Accept-Encoding": ACCEPT_ENCODING}
    if status == 400 and head.startswith(H2_PREFACE):
        return VersionNotSupported("HTTP/2 is not served (prior knowledge); use HTTP/1.1"), {}
    if status == 400 and (version := other_version(head)):
        # llhttp takes such a request to close the connection: bytes after it are
        # refused with it, as if it were malformed.
        return VersionNotSupported(f"{version} is not served; use HTTP/1.1"), {}
    if status == 400 and isinstance(exc, LineTooLong):
        return too_long(head), {}
    if status == 400:
        reason = parser_reason(exc) if exc is not None else message or "bad request"
        return BadRequest(f"malformed HTTP request: {reason}"), {}
    if status == 504:
        return UpstreamTimeout("the request timed out"), {}
    if isinstance(exc, VersionNotSupported):
        return exc, {}
    # Only a bug gets here (the chain renders every error it raises): keep its trace.
    log.error("unhandled error", status=status, exc_info=exc)
    return GatewayError("internal error"), {}


def other_version(head: bytes) -> str | None:
    """The version a request line names when it is not HTTP/1.x (`HTTP/2.0`), else None."""
    version = head.partition(b"\n")[0].rstrip(b"\r").rpartition(b" ")[2]
    if len(version) == 8 and version.startswith(b"HTTP/") and version[5:6] != b"1":
        return version.decode("latin-1")
    return None


def is_anthropic_client(head: bytes) -> bool:
    """Whether a request's head (its first bytes) is from Anthropic's client, which reads
    its errors in its shape (hxgw.endpoints.anthropic_client)."""
    method, _, rest = head.partition(b"\r\n")[0].partition(b" ")
    path = rest.partition(b" ")[0].partition(b"?")[0].decode("latin-1")
    endpoint = endpoint_for(method.decode("latin-1"), path)
    says_version = b"\nanthropic-version:" in head.lower()
    return anthropic_client(endpoint, path, says_version)


def head_timeout(headers: dict[str, str], body: bytes) -> bytes:
    """A whole 408 answer, written by hand: there is no request for aiohttp to answer."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        b"HTTP/1.1 408 Request Timeout\r\nServer: %s\r\n%sContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s"
    ) % (SERVER.encode(), fields.encode(), len(body), body)


def cut_short(exc: ContentEncodingError) -> str | None:
    """The coding of a body aiohttp decodes that its decoder found cut short at its end
    (a deflate stream without its final block), which its parser raises with the body's
    head: None for a coding it lacks the library for."""
    said = exc.message.rpartition(" ")[2]
    return said if said in DECODED else None


def too_long(head: bytes) -> GatewayError:
    """The 414 of a request line longer than the parser reads (8 KiB), or the 431 of a
    header: which one, the head's first bytes say (no line end yet: the request line)."""
    if b"\n" not in head:
        return UriTooLong("the request line (method, path and query) is over 8 KiB")
    return HeaderTooLarge("a request header is longer than the gateway reads")
