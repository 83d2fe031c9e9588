"""The one HTTP server: aiohttp's, for every route, API and operator alike.

`dispatch` is the request handler: it finds the route and runs its chain from
the current snapshot. `protocol` is aiohttp's connection with the gateway's
answer to requests the parser refuses.

May import: aiohttp, the config, the pipeline, observe, keys, hxgw.snapshot; not
lifecycle.
"""

from hxgw.server.dispatch import Dispatcher
from hxgw.server.protocol import GatewayServer

__all__ = ["Dispatcher", "GatewayServer"]
