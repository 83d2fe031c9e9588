"""The operator's routes: who may call them (`guard_operator`), and their answer
(`answer_with` a handler of the server's, as the chain is built).

/metrics and /status show every model, group and key's usage, so they want a key
without group limits, or the metrics key (`Endpoint.guarded`); /status also takes that
key as the password of HTTP Basic auth, since a browser cannot send a bearer header
when it opens a page. Basic works on all of them, so each refusal offers both schemes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from hxgw.config import key_digest
from hxgw.errors import GatewayError, OperatorOnly, Unauthorized
from hxgw.pipeline.auth import guard_key, unexpired, unread_yet
from hxgw.pipeline.client_request import joined_header, sole_header
from hxgw.pipeline.context import Next, RequestContext, Step
from hxgw.state import GatewayState

OperatorHandler = Callable[[web.BaseRequest, GatewayState], Awaitable[web.StreamResponse]]
"""How the server answers one of the operator's routes (hxgw.server.operator_routes)."""
OUTCOME = "hxgw_outcome"
"""Where a handler's refusal puts its outcome, in the response's own mapping."""
# One field line per challenge: RFC 9110 lets one line hold both, but browsers take a
# line as one challenge, and would read Basic's as parameters of Bearer and not prompt.
CHALLENGES = ('Bearer realm="hxgw"', 'Basic realm="hxgw", charset="UTF-8"')


async def guard_operator(ctx: RequestContext, call_next: Next) -> None:
    """Reads ctx.endpoint.guarded and the request's key; a refusal is answered here, not
    by render_errors: its 401 offers two challenges, a field line each."""
    guarded = ctx.endpoint.guarded
    if guarded is None or (guarded == "metrics" and not ctx.state.config.metrics.auth):
        return await call_next(ctx)
    try:
        await authorize(ctx.exchange.request, ctx.state)
    except GatewayError as exc:
        return _answer(ctx, _refused(exc))
    await call_next(ctx)


def answer_with(handler: OperatorHandler) -> Step:
    """The step that answers an operator's route with the server's `handler` for it."""

    async def answer_operator(ctx: RequestContext, call_next: Next) -> None:
        """Writes the handler's response, ctx.status and ctx.bytes_out."""
        _answer(ctx, await handler(ctx.exchange.request, ctx.state))
        await call_next(ctx)

    return answer_operator


def _answer(ctx: RequestContext, response: web.StreamResponse) -> None:
    response.headers["X-Request-ID"] = ctx.request_id  # as every API answer carries it
    ctx.exchange.take(response)
    ctx.status = response.status
    ctx.outcome = response.get(OUTCOME, ctx.outcome)
    ctx.bytes_out = response.content_length or 0


def _refused(exc: GatewayError) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    if exc.status == 401:
        for challenge in CHALLENGES:
            headers.add("WWW-Authenticate", challenge)
    response = web.Response(
        status=exc.status, body=exc.to_json(), content_type="application/json", headers=headers
    )
    response[OUTCOME] = exc.code or exc.type  # for the access line, as the API's errors say
    return response


async def authorize(request: web.BaseRequest, state: GatewayState) -> None:
    """Raise unless the request carries an unrestricted client key or the metrics key."""
    key = _presented_key(request)
    if key is None:
        raise Unauthorized(
            "this endpoint needs a key: 'Authorization: Bearer <key>', or HTTP Basic auth "
            "with the key as the password (any user name)"
        )
    digest = key_digest(key)
    access = state.config.metrics
    metrics_key = access.key_digest is not None and hmac.compare_digest(access.key_digest, digest)
    client = state.keys_by_digest.get(digest)
    stored = state.runtime.stored_keys
    app_key = False
    if client is None and stored is not None:
        if unread_yet(stored, digest, key):
            await stored.next_read()  # made a moment ago? As on the API.
        app_key = unexpired(stored.by_digest.get(digest)) is not None
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
    if client.reach is not None:
        raise OperatorOnly(
            f"key {client.name!r} is limited to some groups (its own or its team's); use "
            "an unrestricted key or the metrics key"
        )


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
