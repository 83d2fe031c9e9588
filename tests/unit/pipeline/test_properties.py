"""Property-based tests: whatever JSON a client sends, parse -> route -> transform yields
a valid upstream body for every candidate, or a GatewayError with a 4xx status; never
any other exception. Transforms and prompt extraction never raise on any input.

The steps run for real (parse_body, route, transform_request) on a hand-made
RequestContext whose request is aiohttp's mocked request carrying the raw bytes.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from hxgw.config import ClientKey
from hxgw.config.transforms import (
    Drop,
    Rename,
    SetFields,
    Transform,
    apply_transforms,
    parse_transforms,
)
from hxgw.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, Endpoint
from hxgw.errors import GatewayError
from hxgw.pipeline.chain import build_chain
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.parse import parse_body
from hxgw.pipeline.route import route
from hxgw.pipeline.transform import transform_request
from hxgw.routing.decision import estimate_parts
from hxgw.routing.learned.prompt import content_text, prompt_text
from hxgw.state import GatewayState
from tests.unit.pipeline.offline import offline_state

MODELS: list[dict[str, Any]] = [
    {"name": "alpha", "tier_score": 0.9, "specializations": ["coding"], "upstream_model": "m-alpha",
     "mode": "chat", "transforms": [{"set": {"temperature": 0}}, {"drop": ["user", "model2"]}]},
    {"name": "beta", "tier_score": 0.7, "specializations": ["chat"], "upstream_model": "beta",
     "mode": "chat"},  # name == upstream id, no rewrite: its raw bytes may go out untouched
    {"name": "gamma", "tier_score": 0.5, "specializations": ["analysis"],
     "upstream_model": "m-gamma", "max_context": 50,
     "transforms": [{"rename": {"max_tokens": "max_completion_tokens"}}]},
    {"name": "embed", "tier_score": 0.8, "specializations": ["embeddings"],
     "upstream_model": "m-embed", "mode": "embedding",
     "transforms": [{"rename": {"input": "prompt"}}, {"set": {"encoding_format": "float"}}]},
    {"name": "comp", "tier_score": 0.4, "specializations": [], "upstream_model": "m-comp",
     "mode": "completion"},
]
ROUTING: dict[str, Any] = {"routing": {
    "strategy": "failover", "default_group": "chat", "failover_order": ["gamma", "beta"],
    "groups": {
        "chat": ["alpha", "beta"],
        "ml": {"models": ["alpha", "beta", "gamma"], "strategy": "ml-based-routing"},
        "rr": {"models": ["beta", "gamma"], "strategy": "round-robin"},
        "weighted": {"models": ["alpha", "gamma"], "strategy": "weighted"},
        "fast": {"models": ["alpha", "beta"], "strategy": "latency"},
        "busy": {"models": ["alpha", "beta"], "strategy": "least-busy"},
        "emb": ["embed"],
        "completions": ["comp", "gamma"],
    },
}}
GROUPS = sorted(ROUTING["routing"]["groups"])
NAMES = [m["name"] for m in MODELS] + [m["upstream_model"] for m in MODELS]
ENDPOINTS = (CHAT, COMPLETIONS, EMBEDDINGS)
KEYS = (ClientKey(name="any", digest=b"a" * 32),
        ClientKey(name="emb-only", digest=b"b" * 32, groups=frozenset({"emb", "rr"})))
# Bounded so the file runs in well under 30 s; no example database (no .hypothesis/ dir).
SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIGHT = settings(SETTINGS, max_examples=120)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayState]:
    yield offline_state(tmp_path_factory.mktemp("props"), models=MODELS, routing=ROUTING)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class _Payload:
    """Just enough of aiohttp's StreamReader for parse_body: the body in two pieces."""

    def __init__(self, raw: bytes) -> None:
        half = len(raw) // 2
        self.pieces = [piece for piece in (raw[:half], raw[half:]) if piece]

    def is_eof(self) -> bool:
        return False  # still arriving: parse_body takes its read loop

    async def readany(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


CHAIN = build_chain((parse_body, route, transform_request))


async def _through_the_steps(state: GatewayState, raw: bytes, endpoint: Endpoint,
                             key: ClientKey, group: str | None) -> RequestContext:
    headers = {"Content-Length": str(len(raw)), "Content-Type": "application/json"}
    if group is not None:
        headers["X-HX-Model-Group"] = group
    request = make_mocked_request("POST", endpoint.upstream_path, headers=headers,
                                  payload=_Payload(raw))  # type: ignore[arg-type]
    ctx = RequestContext(exchange=Exchange(request), state=state, endpoint=endpoint)
    ctx.request_id, ctx.key = "prop", key
    await CHAIN(ctx)
    return ctx


def _check(state: GatewayState, loop: asyncio.AbstractEventLoop, raw: bytes,
           endpoint: Endpoint, key: ClientKey, group: str | None) -> str:
    """Run the steps and encode the body for every candidate (as forward does, lazily);
    assert the property; return what happened (for hypothesis' events)."""
    try:
        ctx = loop.run_until_complete(_through_the_steps(state, raw, endpoint, key, group))
        encoded = [(model, ctx.upstream_bodies.for_model(model)) for model in ctx.candidates]
    except GatewayError as exc:
        assert 400 <= exc.status < 500, f"{type(exc).__name__} {exc.status}: {exc}"
        assert exc.to_json()  # and it renders
        return f"{exc.status} {type(exc).__name__}"
    assert ctx.candidates, "a routed request has at least one candidate"
    assert endpoint.mode is not None
    for model, upstream_body in encoded:
        assert model.serves(endpoint.mode)
        body = orjson.loads(upstream_body)
        assert isinstance(body, dict)
        assert body["model"] == model.upstream_model
    return f"routed to {len(ctx.candidates)} candidates"


JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=25)
MESSAGE = st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(["user", "system", "assistant", "developer", "tool"]) | JSON_VALUES,
    "content": st.text(max_size=200) | JSON_VALUES | st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "input_text"])},
        optional={"text": st.text(max_size=50) | JSON_VALUES}), max_size=3),
})
REQUEST_LIKE = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(GROUPS + NAMES) | st.text(max_size=12) | JSON_VALUES,
    "messages": st.lists(MESSAGE, max_size=4) | JSON_VALUES,
    "stream": st.booleans() | JSON_VALUES,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()})
    | JSON_VALUES,
    "input": st.text(max_size=100) | st.lists(st.text(max_size=20), max_size=3) | JSON_VALUES,
    "prompt": st.text(max_size=100) | JSON_VALUES,
    "max_tokens": st.integers(min_value=-5, max_value=10**6) | JSON_VALUES,
    "max_completion_tokens": st.integers(min_value=-5, max_value=10**6) | JSON_VALUES,
    "user": JSON_VALUES,
    "temperature": JSON_VALUES,
})
BODIES = REQUEST_LIKE | JSON_VALUES


def _encode(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@SETTINGS
@given(body=BODIES, ascii_only=st.booleans(), endpoint=st.sampled_from(ENDPOINTS),
       key=st.sampled_from(KEYS), group=st.none() | st.sampled_from(GROUPS) | st.text(max_size=8))
@example(body={"model": "beta", "messages": []}, ascii_only=True, endpoint=CHAT, key=KEYS[0],
         group=None)
@example(body={"model": "gamma", "messages": [{"role": "user", "content": "x" * 400}]},
         ascii_only=True, endpoint=CHAT, key=KEYS[0], group=None)
@example(body={"model": "embed", "input": ["a", "b"]}, ascii_only=True, endpoint=EMBEDDINGS,
         key=KEYS[1], group=None)
@example(body={"model": 5}, ascii_only=True, endpoint=CHAT, key=KEYS[0], group="chat")
@example(body=[{"model": "chat"}], ascii_only=True, endpoint=CHAT, key=KEYS[0], group=None)
@example(body={"messages": [{"content": "\ud800"}]}, ascii_only=True, endpoint=CHAT,
         key=KEYS[0], group=None)
def test_any_json_body_yields_a_valid_upstream_body_or_a_4xx(
    state: GatewayState, loop: asyncio.AbstractEventLoop, body: Any, ascii_only: bool,
    endpoint: Endpoint, key: ClientKey, group: str | None,
):
    event(_check(state, loop, _encode(body, ascii_only), endpoint, key, group))


WELL_TYPED = st.fixed_dictionaries({"messages": st.lists(MESSAGE, min_size=1, max_size=4)},
                                   optional={
    "model": st.sampled_from(GROUPS + NAMES),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "input": st.text(max_size=100) | st.lists(st.text(max_size=20), max_size=3),
    "prompt": st.text(max_size=300),
    "max_tokens": st.integers(min_value=-5, max_value=10**6),
    "user": JSON_VALUES,
    "temperature": st.floats(0, 2),
    "tools": JSON_VALUES,
})


@SETTINGS
@given(body=WELL_TYPED, endpoint=st.sampled_from(ENDPOINTS), key=st.sampled_from(KEYS),
       group=st.none() | st.sampled_from(GROUPS))
def test_well_typed_requests_route_and_transform_for_every_candidate(
    state: GatewayState, loop: asyncio.AbstractEventLoop, body: dict[str, Any],
    endpoint: Endpoint, key: ClientKey, group: str | None,
):
    event(_check(state, loop, _encode(body, False), endpoint, key, group))


@LIGHT
@given(raw=st.binary(max_size=200) | st.text(max_size=100).map(lambda t: t.encode("utf-8",
                                                                              "surrogatepass")),
       endpoint=st.sampled_from(ENDPOINTS))
@example(raw=b"", endpoint=CHAT)
@example(raw=b"\xef\xbb\xbf{}", endpoint=CHAT)
@example(raw=b"1e999", endpoint=CHAT)
@example(raw=b'{"a": 18446744073709551616}', endpoint=CHAT)
@example(raw=b"[" * 2000, endpoint=CHAT)
def test_any_bytes_yield_a_valid_upstream_body_or_a_4xx(
    state: GatewayState, loop: asyncio.AbstractEventLoop, raw: bytes, endpoint: Endpoint
):
    event(_check(state, loop, raw, endpoint, KEYS[0], None))


@pytest.mark.parametrize("depth", [254, 300, 1000])
def test_a_body_nested_deeper_than_orjson_can_encode_is_a_4xx(
    state: GatewayState, loop: asyncio.AbstractEventLoop, depth: int
):
    raw = b'{"messages": [], "x": ' + b"[" * depth + b"]" * depth + b"}"
    _check(state, loop, raw, CHAT, KEYS[0], None)


TRANSFORM_KEYS = st.sampled_from(["model", "input", "prompt", "user", "a", "b", ""]) | st.text(
    max_size=6)
TRANSFORMS = st.lists(st.one_of(
    st.lists(st.tuples(TRANSFORM_KEYS, TRANSFORM_KEYS), max_size=4).map(
        lambda pairs: Rename(pairs=tuple(pairs))),
    st.lists(st.tuples(TRANSFORM_KEYS, JSON_VALUES), max_size=4).map(
        lambda pairs: SetFields(pairs=tuple(pairs))),
    st.lists(TRANSFORM_KEYS, max_size=4).map(lambda keys: Drop(keys=tuple(keys))),
), max_size=5).map(tuple)


@LIGHT
@given(body=st.dictionaries(TRANSFORM_KEYS, JSON_VALUES, max_size=8), transforms=TRANSFORMS)
def test_transforms_never_raise_and_never_touch_the_original(
    body: dict[str, Any], transforms: tuple[Transform, ...]
):
    before = copy.deepcopy(body)
    out = apply_transforms(body, transforms)
    assert isinstance(out, dict)
    assert body == before


@LIGHT
@given(value=JSON_VALUES | st.lists(st.dictionaries(
    st.sampled_from(["rename", "set", "drop", "other"]), JSON_VALUES, max_size=2), max_size=4))
def test_parsing_any_transform_list_reports_problems_and_never_raises(value: Any):
    from hxgw.config.reader import Problems

    problems = Problems()
    parsed = parse_transforms(value, "model_registry.yaml", "models[0].transforms", problems)
    assert isinstance(parsed, tuple)
    assert all(isinstance(t, Rename | SetFields | Drop) for t in parsed)
    for transform in parsed:
        transform.apply({"input": 1, "model": "m"})


@LIGHT
@given(value=BODIES)
def test_prompt_text_and_token_estimates_never_raise(value: Any):
    assert isinstance(prompt_text(value), str)
    assert isinstance(content_text(value), str)
    if isinstance(value, dict):
        assert sum(estimate_parts(value)) >= 0


def test_the_property_config_is_the_one_the_steps_see(state: GatewayState):
    assert set(state.config.routing.groups) == set(GROUPS)
    assert Path(state.config.config_dir).exists()
