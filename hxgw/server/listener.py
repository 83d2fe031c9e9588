"""The listening site: aiohttp's TCPSite and SockSite, plus a TLS handshake timeout.

asyncio gives a client that opens a TLS connection and never sends its
ClientHello a full minute by default; aiohttp's sites do not let that be set.
This one caps it at `limits.client_idle_timeout`, like any other idle client.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import structlog
from aiohttp import web

from hxgw.config import Tls

log = structlog.get_logger("hxgw.lifecycle.daemon")  # a reload's, as the daemon's other lines


class ListenSite(web.BaseSite):
    __slots__ = ("_handshake_timeout", "_host", "_port", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        *,
        host: str | None = None,
        port: int | None = None,
        sock: socket.socket | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 60.0,
        backlog: int = 2048,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._sock = host, port, sock
        self._handshake_timeout = handshake_timeout

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        if self._sock is not None:
            return f"{scheme}://fd:{self._sock.fileno()}"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        options: dict[str, Any] = {"ssl": self._ssl_context, "backlog": self._backlog}
        if self._ssl_context is not None:
            options["ssl_handshake_timeout"] = self._handshake_timeout
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(server, sock=self._sock, **options)
        else:
            self._server = await loop.create_server(
                server, self._host, self._port, reuse_address=True, **options
            )


def tls_context(tls: Tls) -> ssl.SSLContext:
    """The server's TLS context: the certificate and key of `listen.tls`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    return context


def reread_certificate(context: ssl.SSLContext, tls: Tls) -> None:
    """Load `listen.tls` again into `context`, as a reload does: new handshakes use the
    re-read certificate, open connections keep theirs. One that cannot be read leaves
    the previous one in use, and the log says why."""
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        log.error("cannot re-read the TLS certificate; keeping the previous one", error=str(exc))
