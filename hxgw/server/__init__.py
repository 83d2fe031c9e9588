"""The one HTTP server: aiohttp's, for every route, API and operator alike.

- `dispatch`: the request handler; finds the route and runs its chain on the
  current snapshot.
- `protocol`: aiohttp's server and connection, with the gateway's answer to
  requests the parser refuses and the cap on connections per address (`quota`
  counts a client's refused requests, whose access lines it limits; `refused_heads`
  says what a request its parser refused gets, from what is left of its head).
- `listener`: the listening site (TCP, an inherited socket, TLS).
- `operator_routes`: health, readiness, metrics, the status page and the API
  document; `status_doc` is what /status.json says (and /readyz its readiness
  part), `status_page`, `usage_section` and `charts` draw the page (`cells`: its
  escaped values), `openapi` serves the document.

May import: aiohttp, the top-level modules (hxgw.state, hxgw.runtime,
hxgw.endpoints and the leaves: errors, jsonio, memo, units), config, the pipeline, observe,
upstream; not lifecycle or tools.
"""

from hxgw.server.dispatch import Dispatcher
from hxgw.server.protocol import GatewayServer

__all__ = ["Dispatcher", "GatewayServer"]
