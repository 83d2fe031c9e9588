"""aiohttp's server and connection, with the gateway's answer to what they refuse.

aiohttp answers a request its parser rejects (bad framing, a header too long,
a smuggling attempt) itself, in plain text, and logs the traceback. Here such
a request gets an OpenAI-shaped error like every other, and one access line;
lines for refused requests are limited per address, so that a scanner's
flood of them cannot fill the journal.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from hxgw.errors import BadRequest, GatewayError, UpstreamTimeout
from hxgw.observe import AccessLog
from hxgw.observe.ids import RequestIds
from hxgw.pipeline.exchange import SERVER


class GatewayConnection(RequestHandler):
    """One client connection, served by aiohttp's protocol."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp does: an answer began, so the connection can only be cut.
            raise ConnectionError("the response had begun; no error can follow it")
        error: GatewayError
        if status == 400:
            reason = (message or str(exc) or "bad request").strip().splitlines()[0][:200]
            error = BadRequest(f"malformed HTTP request: {reason}")
        elif status == 504:
            error = UpstreamTimeout("the request timed out")
        else:
            error = GatewayError("internal error")
        body = error.to_json()
        response = web.Response(
            status=error.status,
            body=body,
            content_type="application/json",
            headers={"Server": SERVER},
        )
        response.force_close()
        manager = self._manager
        if isinstance(manager, GatewayServer):
            manager.refused(request.remote, error, len(body))
        return response


class GatewayServer(web.Server):
    """aiohttp's low-level server (no URL dispatcher, no middleware) whose connections
    are `GatewayConnection`s."""

    def __init__(self, handler: Any, *, access: AccessLog, ids: RequestIds, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.access, self.ids = access, ids
        self.quota = PerAddressQuota()

    def __call__(self) -> RequestHandler:
        return GatewayConnection(self, loop=self._loop, **self._kwargs)

    def refused(self, address: str | None, error: GatewayError, size: int) -> None:
        """The access line of a request answered before it had a route."""
        if self.quota.allow(address or "-"):
            self.access.write(
                "-",
                "-",
                self.ids.new(),
                status=error.status,
                model=None,
                group=None,
                key=None,
                latency=0.0,
                ttfb=None,
                size=size,
                failovers=0,
                outcome="malformed" if error.status == 400 else error.type,
            )


class PerAddressQuota:
    """At most `limit` events per client address in each `window` seconds, for at most
    `addresses` addresses at once (a flood from many addresses starts the count over
    rather than grow the table)."""

    def __init__(self, limit: int = 10, window: float = 60.0, addresses: int = 4096) -> None:
        self.limit, self.window, self.addresses = limit, window, addresses
        self._counts: dict[str, tuple[float, int]] = {}

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        since, count = self._counts.get(address, (now, 0))
        if now - since >= self.window:
            since, count = now, 0
        if len(self._counts) >= self.addresses and address not in self._counts:
            self._counts.clear()
        self._counts[address] = (since, count + 1)
        return count < self.limit
