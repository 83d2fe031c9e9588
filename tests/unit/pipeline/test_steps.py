"""Each step alone, with a hand-made context: what it reads, what it writes, how it fails."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from hxgw.config import ClientKey
from hxgw.endpoints import CHAT, EMBEDDINGS, RESPONSE, UNROUTED, Endpoint
from hxgw.errors import BadRequest, MethodNotAllowed, NotFound, Unauthorized, UpstreamError
from hxgw.pipeline.answer.error_event import error_event
from hxgw.pipeline.auth import authenticate
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.parse import parse_body
from hxgw.pipeline.refuse import refuse_unrouted
from hxgw.pipeline.rendering import render_errors
from hxgw.pipeline.request_id import assign_request_id
from hxgw.pipeline.route import route
from hxgw.pipeline.transform import transform_request
from hxgw.state import GatewayState
from tests.unit.pipeline.offline import offline_state

KEY = "sk-test-steps"


class _Body:
    """A request body that has all arrived: what aiohttp's payload offers the steps."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def is_eof(self) -> bool:
        return True

    def read_nowait(self) -> bytes:
        data, self.data = self.data, b""
        return data


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayState]:
    yield offline_state(tmp_path_factory.mktemp("steps"), key=KEY)


def _ctx(state: GatewayState, endpoint: Endpoint, *, method: str = "POST", path: str = "",
         headers: dict[str, str] | None = None, body: bytes = b"") -> RequestContext:
    request = make_mocked_request(method, path or endpoint.upstream_path,
                                  headers=headers or {}, payload=_Body(body))
    return RequestContext(Exchange(request), state, endpoint)


async def _next(ctx: RequestContext) -> None:
    ctx.outcome = "reached"


async def test_request_id_keeps_a_safe_client_id(state: GatewayState):
    ctx = _ctx(state, CHAT, headers={"X-Request-ID": "abc-123"})
    await assign_request_id(ctx, _next)
    assert (ctx.request_id, ctx.outcome) == ("abc-123", "reached")


async def test_request_id_replaces_an_id_unsafe_to_echo(state: GatewayState):
    ctx = _ctx(state, CHAT, headers={"X-Request-ID": "a b\"c"})
    await assign_request_id(ctx, _next)
    assert len(ctx.request_id) == 32 and ctx.request_id != 'a b"c'


@pytest.mark.parametrize("given", ["usage-of-batch_1", "USAGE-OF-x"])
async def test_request_id_replaces_one_that_would_pass_for_a_row_billed_apart(
    state: GatewayState, given: str
):
    # The ledger's reports count no request, and no latency, of such a row.
    ctx = _ctx(state, CHAT, headers={"X-Request-ID": given})
    await assign_request_id(ctx, _next)
    assert len(ctx.request_id) == 32 and ctx.request_id != given


async def test_auth_without_a_bearer_key_is_unauthorized(state: GatewayState):
    with pytest.raises(Unauthorized, match="missing bearer key"):
        await authenticate(_ctx(state, CHAT), _next)


@pytest.mark.parametrize("header", ["Bearer ", "Bearer", "bearer  "])
async def test_auth_with_nothing_after_bearer_says_the_key_is_missing(
    state: GatewayState, header: str
):
    # `Bearer $APP_KEY` of a variable left empty: a client had been told to write it so.
    with pytest.raises(Unauthorized, match=r"^the Authorization header has no key after 'Bearer'$"):
        await authenticate(_ctx(state, CHAT, headers={"Authorization": header}), _next)


@pytest.mark.parametrize("header", [KEY, f"Basic {KEY}"])
async def test_auth_with_a_key_not_sent_as_bearer_says_how_to_send_it(
    state: GatewayState, header: str
):
    with pytest.raises(Unauthorized, match=r"^the Authorization header must read 'Bearer <key>'$"):
        await authenticate(_ctx(state, CHAT, headers={"Authorization": header}), _next)


async def test_auth_with_a_wrong_key_is_unauthorized(state: GatewayState):
    ctx = _ctx(state, CHAT, headers={"Authorization": "Bearer nope"})
    with pytest.raises(Unauthorized, match="invalid API key"):
        await authenticate(ctx, _next)
    assert ctx.key is None


async def test_auth_with_the_right_key_names_it(state: GatewayState):
    ctx = _ctx(state, CHAT, headers={"Authorization": f"Bearer {KEY}"})
    await authenticate(ctx, _next)
    assert ctx.key is not None
    assert (ctx.key.name, ctx.key.digest) == ("master", hashlib.sha256(KEY.encode()).digest())


@pytest.mark.parametrize(("body", "message"), [
    (b"", "request body is empty"),
    (b"{nope", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, got an array"),
    (b'{"model": 7}', "'model' must be a string"),
    (b'{"stream": "yes"}', "'stream' must be true or false"),
])
async def test_parse_refuses_a_body_routing_cannot_use(state: GatewayState, body: bytes,
                                                       message: str):
    with pytest.raises(BadRequest, match=message):
        await parse_body(_ctx(state, CHAT, body=body), _next)


async def test_parse_keeps_the_body_and_reads_stream(state: GatewayState):
    ctx = _ctx(state, CHAT, body=b'{"messages": [], "stream": true}')
    await parse_body(ctx, _next)
    assert ctx.body == {"messages": [], "stream": True} and ctx.stream is True


def _parsed(state: GatewayState, endpoint: Endpoint, body: dict[str, Any],
            headers: dict[str, str] | None = None) -> RequestContext:
    ctx = _ctx(state, endpoint, headers=headers, body=json.dumps(body).encode())
    ctx.key, ctx.body, ctx.raw_body = state.config.keys[0], body, json.dumps(body).encode()
    return ctx


async def test_route_takes_the_group_header_and_orders_its_models(state: GatewayState):
    ctx = _parsed(state, CHAT, {"messages": []}, headers={"X-HX-Model-Group": "solo"})
    await route(ctx, _next)
    assert ctx.group == "solo" and [m.name for m in ctx.candidates] == ["gamma"]


async def test_route_pins_a_registered_model_named_in_the_body(state: GatewayState):
    ctx = _parsed(state, CHAT, {"model": "beta", "messages": []})
    await route(ctx, _next)
    assert ctx.pinned and [m.name for m in ctx.candidates] == ["beta"]


async def test_transform_sends_each_model_its_own_id_and_rewrites(state: GatewayState):
    ctx = _parsed(state, EMBEDDINGS, {"model": "emb", "input": "hi"})
    await route(ctx, _next)
    await transform_request(ctx, _next)
    sent = json.loads(ctx.upstream_bodies.for_model(ctx.candidates[0]))
    assert sent == {"model": "m-embed", "prompt": "hi"}


async def test_a_path_that_looks_like_a_typo_of_a_route_gets_a_hint(state: GatewayState):
    with pytest.raises(NotFound, match=r"^no such route: POST /v1/chat/completion \(did you "
                                       r"mean '/v1/chat/completions'\?\)$"):
        await refuse_unrouted(
            _ctx(state, UNROUTED, method="POST", path="/v1/chat/completion"), _next)


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/"])
async def test_the_gateway_s_root_is_told_where_the_api_and_the_status_page_are(
    state: GatewayState, path: str
):
    with pytest.raises(NotFound, match=rf"^no such route: GET {path}: the API is under /v1 "
                                       r"\(/openapi.json lists its routes\); the status page "
                                       r"is /status$"):
        await refuse_unrouted(_ctx(state, UNROUTED, method="GET", path=path), _next)


async def test_refuse_answers_an_unknown_path_with_404(state: GatewayState):
    with pytest.raises(NotFound, match="no such route: GET /v1/nothing"):
        await refuse_unrouted(_ctx(state, UNROUTED, method="GET", path="/v1/nothing"), _next)


async def test_refuse_answers_a_wrong_method_with_405_and_the_methods_allowed(
    state: GatewayState,
):
    with pytest.raises(MethodNotAllowed) as refused:
        await refuse_unrouted(_ctx(state, UNROUTED, method="GET", path="/v1/chat/completions"),
                              _next)
    assert refused.value.allow == "POST"


async def test_render_errors_answers_a_step_s_error_as_openai_json(state: GatewayState):
    async def failing(ctx: RequestContext) -> None:
        raise Unauthorized("invalid API key")

    ctx = _ctx(state, CHAT)
    ctx.request_id = "rid"
    await render_errors(ctx, failing)
    response = ctx.exchange.response
    assert response is not None and response.status == 401 and ctx.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="hxgw"'
    assert json.loads(response.body)["error"]["code"] == "invalid_api_key"  # type: ignore[arg-type]


async def test_render_errors_hides_a_bug_behind_a_500_with_the_request_id(state: GatewayState):
    async def buggy(ctx: RequestContext) -> None:
        raise KeyError("oops")

    ctx = _ctx(state, CHAT)
    ctx.request_id = "rid-7"
    await render_errors(ctx, buggy)
    body = json.loads(ctx.exchange.response.body)  # type: ignore[union-attr, arg-type]
    assert ctx.status == 500 and body["error"]["message"] == "internal error (request id rid-7)"


def test_a_stored_response_streamed_again_ends_in_a_responses_error_event_numbered_on(
    state: GatewayState,
):
    ctx = _ctx(state, RESPONSE, method="GET",
               path="/v1/responses/resp_1?stream=true&starting_after=6")
    ctx.events = 2  # sequence numbers 7 and 8 went out
    event = json.loads(error_event(ctx, UpstreamError("the upstream broke")))
    assert (event["type"], event["sequence_number"]) == ("error", 9)
    assert event["error"]["code"] == "upstream_unavailable"


def test_a_starting_after_of_thousands_of_digits_still_gives_an_error_event(
    state: GatewayState,
):
    ctx = _ctx(state, RESPONSE, method="GET",
               path="/v1/responses/resp_1?stream=true&starting_after=" + "9" * 5000)
    ctx.events = 1
    event = json.loads(error_event(ctx, UpstreamError("the upstream broke")))
    assert (event["type"], event["sequence_number"]) == ("error", 1)


def test_the_ledger_row_is_in_column_order(state: GatewayState):
    from hxgw.pipeline.context import Used
    from hxgw.pipeline.record_usage import row_values
    from hxgw.usage import COLUMNS, UsageRow

    ctx = _ctx(state, CHAT)
    ctx.request_id, ctx.key, ctx.group, ctx.served_by = "r1", ClientKey(name="k", digest=b""), "g", "m"
    ctx.status, ctx.stream, ctx.outcome, ctx.failovers, ctx.ttfb = 201, True, "ok", 2, 0.25
    ctx.used = Used(3, 4, 0.5, "reported")
    row = UsageRow(**dict(zip(COLUMNS, row_values(ctx), strict=True)))
    assert (row.request_id, row.key_name, row.route, row.model_group, row.model) == (
        "r1", "k", CHAT.name, "g", "m")
    assert (row.status, row.prompt_tokens, row.completion_tokens, row.total_tokens) == (
        201, 3, 4, 7)
    assert (row.cost, row.stream, row.disconnected, row.failovers) == (0.5, True, False, 2)
    assert row.usage_source == "reported"
    assert row.first_byte == pytest.approx(row.started + 0.25)
    assert row.started <= row.ended
