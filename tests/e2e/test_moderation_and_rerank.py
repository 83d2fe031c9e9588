"""Moderation (with the official openai SDK) and rerank (as Cohere and LiteLLM clients
call it) through the gateway: routed by group, failing over, errors in OpenAI's shape."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from tests import one_gateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, ledger_rows, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
DOCS = ["the cat sat on the mat", "gateways route requests", "a cat and a dog"]


async def test_a_moderation_is_answered_with_the_groups_model(gateway: Gateway, fake: FakeUpstream):
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        result = await sdk.moderations.create(model="chat", input=["hello", "attack them"])
    assert [r.flagged for r in result.results] == [False, True]
    assert result.results[1].categories.violence is True
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/moderations", "m-alpha")


async def test_a_failing_moderation_model_fails_over(gateway: Gateway, fake: FakeUpstream):
    fake.behave("m-alpha", status=503)
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        raw = await sdk.moderations.with_raw_response.create(model="chat", input="hi")
    assert raw.headers["X-HX-Model"] == "beta"


async def test_rerank_answers_on_both_paths_best_document_first(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    body = {"model": "chat", "query": "a cat", "documents": DOCS, "top_n": 2}
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
    ("/v1/moderations", {"model": "chat", "input": "hello"}),
    ("/v1/rerank", {"model": "chat", "query": "a cat", "documents": DOCS}),
])
async def test_a_moderation_or_rerank_is_billed_its_input_and_no_completion(
    own_gateway: Gateway, client: aiohttp.ClientSession, path: str, body: dict[str, object]
):
    gateway = own_gateway  # its ledger must hold this test's row alone
    # Neither writes text: their answers (scores, categories) are no completion tokens,
    # however long, and none is reserved for them.
    async with client.post(gateway.url + path, json=body, headers=gateway.auth) as resp:
        assert resp.status == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] == 0
