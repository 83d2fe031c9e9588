"""Where an upstream lives, how a header line is framed, and the errors of reaching it."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit


def header_line(name: str, value: str) -> bytes:
    """One framed header line. aiohttp's parser already refuses CR and LF in a client's
    header values; dropping them here too keeps a value from adding a header of its own."""
    if "\r" in value or "\n" in value:
        value = value.replace("\r", "").replace("\n", "")
    return f"{name}: {value}\r\n".encode("latin-1", "replace")


TransportError = (OSError, TimeoutError)
"""How an exchange with an upstream breaks: a reset, a refused connect, a timeout."""


class UpstreamConnectError(ConnectionError):
    """No connection could be opened to the upstream."""


class UpstreamConnectTimeout(UpstreamConnectError, TimeoutError):
    """The upstream did not take the connection within the connect timeout: a timeout
    (a request whose every candidate timed out is a 504) and a failed connect both."""


class UpstreamProtocolError(ConnectionError):
    """The upstream answered with something that is not HTTP/1.1."""


class Origin(NamedTuple):
    """Where one upstream lives, parsed once per config snapshot. A NamedTuple, not a
    frozen dataclass: it keys the pools, and a tuple hashes without a Python call."""

    host: str
    port: int
    tls: bool
    base_path: bytes
    host_header: bytes

    @classmethod
    def from_url(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii():
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)  # ValueError for a port out of range
        netloc = parts.netloc.rpartition("@")[2]
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            base_path=parts.path.rstrip("/").encode(),
            host_header=netloc.encode("idna"),
        )
