"""The operator's endpoints: readiness, metrics, the status page and the API document.

Who may call each is the chain's to say before its handler runs
(hxgw.pipeline.operator.guard_operator): /healthz, /readyz and /openapi.json are open.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from hxgw import jsonio
from hxgw.observe.access import NOT_READY
from hxgw.observe.metrics import CONTENT_TYPE
from hxgw.observe.workers import families, render_total
from hxgw.pipeline.operator import OUTCOME, OperatorHandler
from hxgw.server.openapi import openapi_bytes
from hxgw.server.status_doc import readiness, status_with_usage
from hxgw.server.status_page import render_status_html
from hxgw.state import GatewayState


async def healthz(request: web.BaseRequest, state: GatewayState) -> web.Response:
    """Liveness only: the process answers. Readiness is /readyz."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.BaseRequest, state: GatewayState) -> web.Response:
    ready, body = readiness(state)
    response = web.Response(
        status=200 if ready else 503, body=jsonio.dumps(body), content_type="application/json"
    )
    if not ready:
        response[OUTCOME] = NOT_READY  # the access line's, which said ok of a 503
    return response


async def metrics(request: web.BaseRequest, state: GatewayState) -> web.Response:
    runtime = state.runtime
    if runtime.figures is None:
        body = runtime.metrics.render()
    else:  # one daemon of several workers: the sum over them
        own = families(runtime.metrics.registry)
        others = (other["metrics"] for other in runtime.figures.others())
        body = render_total(own, others, runtime.started)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def status_json(request: web.BaseRequest, state: GatewayState) -> web.Response:
    return web.Response(
        body=jsonio.dumps(await status_with_usage(state)), content_type="application/json"
    )


async def status_page(request: web.BaseRequest, state: GatewayState) -> web.Response:
    html = render_status_html(await status_with_usage(state))
    return web.Response(
        text=html,
        content_type="text/html",
        headers={
            # No page may frame this one (clickjacking): the CSP for today's browsers,
            # X-Frame-Options for older ones.
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
            ),
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
        },
    )


async def openapi(request: web.BaseRequest, state: GatewayState) -> web.Response:
    return web.Response(body=openapi_bytes(), content_type="application/json")


HANDLERS: Mapping[str, OperatorHandler] = {
    "healthz": healthz,
    "readyz": readyz,
    "metrics": metrics,
    "status": status_page,
    "status.json": status_json,
    "openapi.json": openapi,
}
"""The operator's routes by endpoint name (see hxgw.endpoints.OPERATOR)."""
