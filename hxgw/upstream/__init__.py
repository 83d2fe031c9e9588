"""The gateway as a client: the HTTP/1.1 connection pools to the upstreams,
per-request deadlines, and the probes that say which upstreams answer.

May import: hxgw.config, hxgw.memo.
"""

from hxgw.upstream.client import UpstreamClient
from hxgw.upstream.origin import (
    Origin,
    UpstreamConnectError,
    UpstreamProtocolError,
    header_line,
)
from hxgw.upstream.response import UpstreamResponse

__all__ = [
    "Origin",
    "UpstreamClient",
    "UpstreamConnectError",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "header_line",
]
