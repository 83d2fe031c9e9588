"""Moderation (with the official openai SDK) and rerank (as Cohere and LiteLLM clients
call it) through the gateway: routed by group to models of their mode, failing over,
errors in OpenAI's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, ledger_rows, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
DOCS = ["the cat sat on the mat", "gateways route requests", "a cat and a dog"]
SCORING_MODELS: list[dict[str, Any]] = [
    *DEFAULT_MODELS,
    {"name": "judge", "tier_score": 0.9, "specializations": [],
     "upstream_model": "m-mod", "mode": "moderation"},
    {"name": "judge-2", "tier_score": 0.5, "specializations": [],
     "upstream_model": "m-mod-2", "mode": "moderation"},
    {"name": "ranker", "tier_score": 0.5, "specializations": [],
     "upstream_model": "m-rank", "mode": "rerank"},
]
GROUPS = {"chat": ["alpha", "beta"], "safety": ["judge", "judge-2"], "rank": ["ranker"]}


@pytest.fixture(scope="module")
async def module_gateway(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[Gateway]:
    """The gateway this module's tests share (tests/one_gateway.py), with scoring models."""
    async with one_gateway.serving_shared(tmp_path_factory.mktemp("one-gateway"),
                                          module_upstream[1], models=SCORING_MODELS,
                                          groups=GROUPS) as shared:
        yield shared


async def test_a_moderation_is_answered_with_the_groups_model(gateway: Gateway, fake: FakeUpstream):
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        result = await sdk.moderations.create(model="safety", input=["hello", "attack them"])
    assert [r.flagged for r in result.results] == [False, True]
    assert result.results[1].categories.violence is True
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/moderations", "m-mod")


async def test_a_failing_moderation_model_fails_over(gateway: Gateway, fake: FakeUpstream):
    fake.behave("m-mod", status=503)
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        raw = await sdk.moderations.with_raw_response.create(model="safety", input="hi")
    assert raw.headers["X-HX-Model"] == "judge-2"


async def test_rerank_answers_on_both_paths_best_document_first(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    body = {"model": "rank", "query": "a cat", "documents": DOCS, "top_n": 2}
    for path in ("/v1/rerank", "/rerank"):
        async with client.post(gateway.url + path, json=body, headers=gateway.auth) as resp:
            assert resp.status == 200
            answer = await resp.json()
        assert [r["index"] for r in answer["results"]] == [2, 0]
    assert {r.path for r in fake.requests} == {"/v1/rerank"}


async def test_a_rerank_without_a_key_is_refused_in_openai_shape(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.post(gateway.url + "/v1/rerank", json={"model": "chat"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/moderations", {"model": "judge", "input": "hello"}),
    ("/v1/rerank", {"model": "ranker", "query": "a cat", "documents": DOCS}),
])
async def test_a_moderation_or_rerank_is_billed_its_input_and_no_completion(
    start_gateway: StartGateway, client: aiohttp.ClientSession, path: str, body: dict[str, object]
):
    # Its own gateway: the ledger must hold this test's row alone.
    gateway = await start_gateway(models=SCORING_MODELS)
    # Neither writes text: their answers (scores, categories) are no completion tokens,
    # however long, and none is reserved for them.
    async with client.post(gateway.url + path, json=body, headers=gateway.auth) as resp:
        assert resp.status == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] == 0


MIXED = [
    {"name": "talker", "tier_score": 0.9, "specializations": [], "mode": "chat",
     "upstream_model": "m-alpha"},
    {"name": "judge", "tier_score": 0.5, "specializations": [], "mode": "moderation",
     "upstream_model": "m-mod"},
]


async def test_a_moderation_without_a_model_goes_to_the_default_groups_moderation_model(
    start_gateway: StartGateway, fake: FakeUpstream
):
    # OpenAI lets a moderation name no model; the group's chat model is skipped.
    gateway = await start_gateway(models=MIXED, routing={
        "routing": {"default_group": "chat", "groups": {"chat": ["talker", "judge"]}}})
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        raw = await sdk.moderations.with_raw_response.create(input="attack them")
    assert raw.headers["X-HX-Model"] == "judge"
    assert raw.parse().results[0].flagged is True
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/moderations", "m-mod")


async def test_a_moderation_without_a_model_where_the_default_group_has_none_is_a_400(
    gateway: Gateway, fake: FakeUpstream
):
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.moderations.create(input="hello")
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "model"
    assert error["message"] == ("no model named, and the default group 'chat' has no model "
                                "for this endpoint (moderation); name one that has: safety")
    assert fake.requests == []  # nothing went upstream


async def test_a_chat_model_named_for_a_moderation_is_a_400(gateway: Gateway, fake: FakeUpstream):
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.moderations.create(model="alpha", input="hello")
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["message"], error["param"]) == ("model 'alpha' serves chat requests only",
                                                  "model")
    assert fake.requests == []
