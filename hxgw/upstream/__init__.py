"""The gateway as a client: the HTTP/1.1 connection pools to the upstreams, the
cap and queue per upstream, per-request deadlines, and how an id names the
upstream or model that holds its object (`affinity`).

May import: hxgw.memo; nothing else of hxgw (the config imports it, to check an
upstream's URL with the code that will use it).
"""

from hxgw.upstream.admission import Gate, GateFull, Gates
from hxgw.upstream.client import UpstreamClient
from hxgw.upstream.origin import (
    Origin,
    TransportError,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamProtocolError,
    header_line,
)
from hxgw.upstream.response import UpstreamResponse

__all__ = [
    "Gate",
    "GateFull",
    "Gates",
    "Origin",
    "TransportError",
    "UpstreamClient",
    "UpstreamConnectError",
    "UpstreamConnectTimeout",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "header_line",
]
