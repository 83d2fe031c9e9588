"""The operator's endpoints: readiness, metrics, the status page and the API document.

/readyz and /openapi.json are open like /healthz. /metrics and /status show
every model and group, so they want a key without group limits (or the
metrics key); /status also takes that key as the password of HTTP Basic
auth, since a browser cannot send a bearer header when it opens a page.
Basic works on all three, so each refusal offers both schemes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from aiohttp import web
from multidict import CIMultiDict

from hxgw import jsonio
from hxgw.config import key_digest
from hxgw.errors import GatewayError, OperatorOnly, Unauthorized
from hxgw.observe.metrics import CONTENT_TYPE
from hxgw.observe.workers import families, render_total
from hxgw.pipeline.auth import current, guard_key, unread_yet
from hxgw.pipeline.client_request import joined_header, sole_header
from hxgw.pipeline.context import OperatorHandler
from hxgw.pipeline.operator import OUTCOME
from hxgw.server.openapi import openapi_bytes
from hxgw.server.status_doc import readiness, status_with_usage
from hxgw.server.status_page import render_status_html
from hxgw.state import GatewayState


async def healthz(request: web.BaseRequest, state: GatewayState) -> web.Response:
    """Liveness only: the process answers. Readiness is /readyz."""
    return web.json_response({"status": "ok"})


# One field line per challenge: RFC 9110 lets one line hold both, but browsers take a
# line as one challenge, and would read Basic's as parameters of Bearer and not prompt.
CHALLENGES = ('Bearer realm="hxgw"', 'Basic realm="hxgw", charset="UTF-8"')


def _error(exc: GatewayError) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    if exc.status == 401:
        for challenge in CHALLENGES:
            headers.add("WWW-Authenticate", challenge)
    response = web.Response(
        status=exc.status, body=exc.to_json(), content_type="application/json", headers=headers
    )
    response[OUTCOME] = exc.code or exc.type  # for the access line, as the API's errors say
    return response


def _presented_key(request: web.BaseRequest) -> str | None:
    scheme, _, value = (sole_header(request.headers, "Authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return sole_header(request.headers, "x-api-key") or None  # as the API routes take it


async def authorize(
    request: web.BaseRequest, state: GatewayState, *, metrics: bool = False
) -> None:
    """Raise unless the request carries an unrestricted client key or the metrics key."""
    access = state.config.metrics
    if metrics and not access.auth:
        return
    key = _presented_key(request)
    if key is None:
        raise Unauthorized(
            "this endpoint needs a key: 'Authorization: Bearer <key>', or HTTP Basic auth "
            "with the key as the password (any user name)"
        )
    digest = key_digest(key)
    metrics_key = access.key_digest is not None and hmac.compare_digest(access.key_digest, digest)
    client = state.keys_by_digest.get(digest)
    stored = state.runtime.stored_keys
    app_key = False
    if client is None and stored is not None:
        if unread_yet(stored, digest, key):
            await stored.next_read()  # made a moment ago? As on the API.
        app_key = current(stored.by_digest.get(digest)) is not None
    # One guard for every authenticated route: guessing here counts, and is refused, as
    # it is on the API (a key `hxgw keys` made is no guess).
    valid = metrics_key or bool(client) or app_key
    guard_key(
        state, request.remote, lambda name: joined_header(request.headers, name), digest, valid
    )
    if metrics_key:
        return
    if app_key:
        # An application's key: these routes show every key's usage and the upstreams.
        raise OperatorOnly(
            "a key made by `hxgw keys` is an application's: use MASTER_KEY, an "
            "unrestricted key of the config, or the metrics key"
        )
    assert client is not None
    if client.groups is not None:
        raise OperatorOnly(
            f"key {client.name!r} is limited to some groups; use an unrestricted "
            "key or the metrics key"
        )


async def readyz(request: web.BaseRequest, state: GatewayState) -> web.Response:
    ready, body = readiness(state)
    response = web.Response(
        status=200 if ready else 503, body=jsonio.dumps(body), content_type="application/json"
    )
    if not ready:
        response[OUTCOME] = "not_ready"  # the access line's, which said ok of a 503
    return response


async def metrics(request: web.BaseRequest, state: GatewayState) -> web.Response:
    try:
        await authorize(request, state, metrics=True)
    except GatewayError as exc:
        return _error(exc)
    runtime = state.runtime
    if runtime.figures is None:
        body = runtime.metrics.render()
    else:  # one daemon of several workers: the sum over them
        own = families(runtime.metrics.registry)
        others = (other["metrics"] for other in runtime.figures.others())
        body = render_total(own, others, runtime.started)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def status_json(request: web.BaseRequest, state: GatewayState) -> web.Response:
    try:
        await authorize(request, state)
    except GatewayError as exc:
        return _error(exc)
    return web.Response(
        body=jsonio.dumps(await status_with_usage(state)), content_type="application/json"
    )


async def status_page(request: web.BaseRequest, state: GatewayState) -> web.Response:
    try:
        await authorize(request, state)
    except GatewayError as exc:
        return _error(exc)
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
