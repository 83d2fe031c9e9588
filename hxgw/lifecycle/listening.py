"""The daemon's one HTTP server: aiohttp's, with the gateway's limits on its clients,
bound to the config's address or to the socket a worker's supervisor bound.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from aiohttp import web

from hxgw.config import Config
from hxgw.keys.guard import counted_as
from hxgw.runtime import Runtime
from hxgw.server import Dispatcher, GatewayServer
from hxgw.server.listener import ListenSite


def gateway_server(
    dispatcher: Dispatcher,
    runtime: Runtime,
    config: Config,
    per_address: Callable[[], tuple[int, Callable[[str], bool]]],
) -> GatewayServer:
    """The server whose connections run `dispatcher`; its limits are the config's at
    start (the connection cap per address follows reloads through `per_address`)."""
    return GatewayServer(
        dispatcher,
        access=runtime.access,
        ids=runtime.ids,
        per_address=per_address,
        counted_as=counted_as,
        handler_cancellation=True,
        access_log=None,
        keepalive_timeout=config.limits.client_idle_timeout,
        # Header limits: aiohttp's defaults for a line, 16 KiB for one field.
        max_field_size=16384,
        # After a 408 or 413 the unread rest of a body is drained this long, then the
        # connection closes (aiohttp's default of 10 s would let a stalled client linger).
        lingering_time=2.0,
    )


async def listen(
    runner: web.ServerRunner,
    config: Config,
    listener: socket.socket | None,
    ssl_context: ssl.SSLContext | None,
) -> None:
    """Start accepting: on `listener` (a worker's, bound by its supervisor), else on the
    config's address. Raises OSError when the address cannot be bound."""
    site = ListenSite(
        runner,
        host=config.listen.host,
        port=config.listen.port,
        sock=listener,
        ssl_context=ssl_context,
        handshake_timeout=config.limits.client_idle_timeout,
    )
    await site.start()
