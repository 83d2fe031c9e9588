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
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from hxgw import __version__, jsonio
from hxgw.errors import GatewayError, OperatorOnly, Unauthorized
from hxgw.observe.key_store import key_store_status
from hxgw.observe.ledger import ledger_status
from hxgw.observe.limits_store import limits_store_status
from hxgw.observe.metrics import CONTENT_TYPE
from hxgw.observe.workers import families, render_total, total_status
from hxgw.pipeline.auth import current, guard_key, unread_yet
from hxgw.pipeline.client_request import sole_header
from hxgw.pipeline.context import OperatorHandler
from hxgw.pipeline.operator import OUTCOME
from hxgw.server.openapi import openapi_bytes
from hxgw.server.status_page import render_status_html
from hxgw.state import GatewayState
from hxgw.upstream import Gate


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
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
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
    guard_key(state, request.remote, request.headers.get, digest, valid)
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


def _readiness(state: GatewayState) -> tuple[bool, dict[str, Any]]:
    runtime, stored = state.runtime, state.runtime.stored_keys
    return runtime.readiness.report(
        state.config,
        runtime.inflight.draining,
        runtime.loop_lag.seconds,
        keys_unread=stored is not None and not stored.ever_read,
    )


async def readyz(request: web.BaseRequest, state: GatewayState) -> web.Response:
    ready, body = _readiness(state)
    return web.Response(
        status=200 if ready else 503, body=jsonio.dumps(body), content_type="application/json"
    )


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


async def status_with_usage(state: GatewayState) -> dict[str, Any]:
    """The daemon's status and the ledger's usage series. Every worker reads the same
    store, so the usage is not summed over workers; it is read in a thread, at most once
    every few seconds (hxgw.usage.RecentUsage)."""
    return daemon_status(state) | {"usage": await state.runtime.recent_usage.read()}


_UPSTREAM = ("name", "url", "reachable", "last_ok_seconds_ago")


def daemon_status(state: GatewayState) -> dict[str, Any]:
    """This process's status or, with several workers, the daemon's: their sum."""
    own = status(state)
    figures = state.runtime.figures
    if figures is None:
        return own
    return total_status(own, (other["status"] for other in figures.others()))


def status(state: GatewayState) -> dict[str, Any]:
    """What /status.json says: the process, its config, each upstream, model and group."""
    config, runtime = state.config, state.runtime
    is_ready, ready = _readiness(state)
    groups_of: dict[str, list[str]] = {}
    for group in config.routing.groups.values():
        for name in group.models:
            groups_of.setdefault(name, []).append(group.name)
    models = []
    now = time.monotonic()
    for model in config.models.values():
        health = runtime.memory.health[model.name]
        models.append(
            {
                "name": model.name,
                "upstream_model": model.upstream_model,
                "groups": groups_of.get(model.name, []),
                "circuit": health.circuit_now(now),
                "ewma_ttfb_ms": _ms(health.ewma_ttfb),
                "ewma_latency_ms": _ms(health.ewma_latency),
                "error_rate": round(health.error_rate, 4),
                "inflight": health.inflight,
                "requests": health.requests,
            }
        )
    reload = runtime.last_reload
    return {
        "version": __version__,
        "uptime_seconds": round(time.time() - runtime.started, 1),
        "config_generation": state.generation,
        "last_reload": {"result": reload.result, "message": reload.message, "at": _iso(reload.at)},
        # What /readyz says, so that the page an incident opens says why it is 503.
        "ready": is_ready,
        "reasons": ready["reasons"],
        "draining": runtime.inflight.draining,
        "listen": runtime.listening,
        "upstreams": [
            {k: u[k] for k in (*_UPSTREAM, "last_error", "missing_models")}
            | _saturation(runtime.gates.get(u["name"]))
            for u in ready["upstreams"]
        ],
        "requests": runtime.rate.snapshot(len(runtime.inflight)),
        "models": models,
        "ledger": ledger_status(runtime.ledger),
        "limits_store": limits_store_status(runtime.redis_limiter()),
        "key_store": key_store_status(runtime.stored_keys),
        "groups": [
            {
                "name": g.name,
                "strategy": config.routing.strategy_of(g.name),
                "models": list(g.models),
            }
            for g in config.routing.groups.values()
        ],
    }


def _saturation(gate: Gate | None) -> dict[str, int]:
    """How full an upstream is: requests in flight against its cap, waiting, shed."""
    if gate is None:
        return {"in_use": 0, "cap": 0, "queued": 0, "shed": 0}
    return gate.saturation()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _iso(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


HANDLERS: Mapping[str, OperatorHandler] = {
    "healthz": healthz,
    "readyz": readyz,
    "metrics": metrics,
    "status": status_page,
    "status.json": status_json,
    "openapi.json": openapi,
}
"""The operator's routes by endpoint name (see hxgw.endpoints.OPERATOR)."""
