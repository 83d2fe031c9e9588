"""What the gateway reads of a request aiohttp's parser refused, whose head it kept only
the first bytes of (`GatewayConnection._head_start`): the version its request line
names, whether its client is Anthropic's (the error shape it reads), and a
body coding cut short; and the 408 of a head that never completed, written by hand.
"""

from __future__ import annotations

from aiohttp.http_exceptions import ContentEncodingError

from hxgw.endpoints import anthropic_client, endpoint_for
from hxgw.errors import GatewayError, HeaderTooLarge, UriTooLong
from hxgw.pipeline.client_request import DECODED
from hxgw.pipeline.exchange import SERVER


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
