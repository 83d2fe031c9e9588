"""The official node openai SDK and the Vercel AI SDK (`ai` + `@ai-sdk/openai`) against a
real `hxgw serve` and the fake upstream, run by `node` as a user's program would be.

Each script in tests/node does one thing and prints one line of JSON, which the test
reads. The packages are pinned in tests/node/package-lock.json; `make test-node` installs
them with `npm ci` and runs tests/node (marker `node`). They are the newest that run on
Debian 12's node 18: `openai` 6 and `ai` 6 with `@ai-sdk/openai` 3 (`openai` 7, `ai` 7
and `@ai-sdk/openai` 4 need node >= 22), and `@anthropic-ai/sdk` 1.16 (no `engines`).
npm warns that `@vercel/oidc`, which `ai` pulls in for Vercel's own gateway, wants node
20: it loads on node 18, and only that gateway uses it. Node 18 has no global `File`,
which uploads need: lib.mjs sets it from `node:buffer`, as the openai SDK's error says to.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream, openai_usage
from tests.fixtures import DEFAULT_MODELS, Gateway, new_key

pytestmark = pytest.mark.node

SCRIPTS = Path(__file__).resolve().parent
GREETING = "Hello there from the fake upstream"


async def run(script: str, gateway: Gateway, **env: str) -> Any:
    """Run `script` (relative to tests/node) with node against `gateway`; its JSON line."""
    node = shutil.which("node")
    if node is None or not (SCRIPTS / "node_modules").is_dir():
        pytest.fail("node and tests/node/node_modules are needed: run `make test-node`")
    process = await asyncio.create_subprocess_exec(
        node, str(SCRIPTS / script), cwd=SCRIPTS,
        env=os.environ | {"HXGW_URL": gateway.url, "HXGW_KEY": gateway.key} | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, f"node {script} exited {process.returncode}:\n{err.decode()}"
    return json.loads(out.decode().splitlines()[-1])


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


# The official openai SDK (package `openai`).

async def test_openai_chat_completion_is_answered_by_the_groups_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/chat.mjs", gateway)
    assert result["content"] == GREETING and result["finishReason"] == "stop"
    assert result["usage"] == openai_usage(3, 6)
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/chat/completions", "m-alpha")


async def test_openai_streamed_chat_arrives_delta_by_delta_then_the_usage_chunk(gateway: Gateway):
    result = await run("openai/chat-stream.mjs", gateway)
    assert result["deltas"] == ["Hello", " there", " from", " the", " fake", " upstream"]
    assert result["finishReason"] == "stop"
    assert result["usage"] == openai_usage(3, 6)
    assert result["usageChunkChoices"] == 0


async def test_openai_stream_broken_upstream_mid_response_is_an_api_error(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", content="a b c d", reset_after_chunks=2)
    result = await run("openai/chat-stream-broken.mjs", gateway)
    assert result["deltas"] == ["a", " b"]
    assert "APIError" in result["error"]["classes"]
    assert "mid-response" in result["error"]["message"]


async def test_openai_embeddings_are_asked_as_base64_and_decoded_by_the_sdk(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/embeddings.mjs", gateway)
    assert result["vectors"] == [[0.5] * 8, [0.5] * 8]
    assert fake.requests[-1].body["encoding_format"] == "base64"


async def test_openai_models_list_has_the_groups_and_the_models_by_name(gateway: Gateway):
    result = await run("openai/models.mjs", gateway)
    assert {"chat", "emb", "solo", "alpha", "embed"} <= set(result["ids"])


async def test_openai_models_retrieve_describes_a_group_with_its_models(gateway: Gateway):
    model = (await run("openai/models-retrieve.mjs", gateway, HXGW_MODEL="chat"))["model"]
    assert (model["id"], model["object"], model["owned_by"]) == ("chat", "model", "hxgw")
    assert model["hx_models"] == ["alpha", "beta"]


async def test_openai_models_retrieve_describes_a_model_as_its_upstream_lists_it(
    gateway: Gateway,
):
    model = (await run("openai/models-retrieve.mjs", gateway, HXGW_MODEL="alpha"))["model"]
    assert (model["id"], model["owned_by"], model["hx_upstream_model"]) == (
        "alpha", "fake", "m-alpha")


async def test_openai_models_retrieve_of_a_missing_model_is_a_not_found_error(gateway: Gateway):
    error = (await run("openai/models-retrieve.mjs", gateway, HXGW_MODEL="no-such"))["error"]
    assert "NotFoundError" in error["classes"] and error["status"] == 404
    assert "no-such" in error["message"]


async def test_openai_moderation_is_answered_by_the_groups_model(
    start_gateway: StartGateway, fake: FakeUpstream
):
    judge = {"name": "judge", "tier_score": 0.5, "specializations": [],
             "upstream_model": "m-mod", "mode": "moderation"}
    gateway = await start_gateway(models=[*DEFAULT_MODELS, judge], routing={"routing": {
        "default_group": "chat", "groups": {"chat": ["alpha"], "safety": ["judge"]}}})
    result = await run("openai/moderation.mjs", gateway)
    assert (result["flagged"], result["violence"]) == ([False, True], [False, True])
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/moderations", "m-mod")


async def test_openai_wrong_key_is_an_authentication_error_with_status_401(
    gateway: Gateway, fake: FakeUpstream
):
    error = (await run("openai/bad-key.mjs", gateway, HXGW_BAD_KEY=new_key()))["error"]
    assert "AuthenticationError" in error["classes"]
    assert (error["status"], error["code"]) == (401, "invalid_api_key")
    assert fake.requests == []


async def test_openai_chat_sent_to_an_embedding_group_is_a_bad_request_error(gateway: Gateway):
    error = (await run("openai/bad-request.mjs", gateway))["error"]
    assert "BadRequestError" in error["classes"] and error["status"] == 400
    assert "no model for this endpoint" in error["message"]


async def test_openai_upstream_429_is_a_rate_limit_error_with_its_headers(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-gamma", status=429, retry_after="20")
    error = (await run("openai/rate-limited.mjs", gateway))["error"]
    assert "RateLimitError" in error["classes"] and error["status"] == 429
    assert error["code"] == "rate_limit_exceeded"
    assert (error["retryAfter"], error["remainingRequests"]) == ("20", "0")


async def test_openai_with_response_shows_the_request_id_the_upstream_was_sent(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/with-response.mjs", gateway)
    assert result["status"] == 200 and result["content"] == GREETING
    assert result["header"] and result["requestId"] == result["header"]
    assert result["dataRequestId"] == result["header"]
    assert _header(fake.requests[-1].headers, "x-request-id") == result["header"]


async def test_openai_callers_request_id_comes_back_unchanged(gateway: Gateway):
    result = await run("openai/with-response.mjs", gateway, HXGW_REQUEST_ID="node-sdk-run-1")
    assert result["header"] == result["requestId"] == "node-sdk-run-1"


# The Vercel AI SDK (`ai`) with its OpenAI provider (`@ai-sdk/openai`).

async def test_ai_generate_text_with_a_chat_model(gateway: Gateway, fake: FakeUpstream):
    result = await run("ai/generate-text.mjs", gateway)
    assert result["text"] == GREETING and result["finishReason"] == "stop"
    assert (result["usage"]["inputTokens"], result["usage"]["outputTokens"]) == (3, 6)
    assert fake.requests[-1].path == "/v1/chat/completions"


async def test_ai_stream_text_with_a_chat_model_streams_then_reports_usage(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("ai/stream-text.mjs", gateway)
    assert result["parts"] == ["Hello", " there", " from", " the", " fake", " upstream"]
    assert result["errors"] == [] and result["finishReason"] == "stop"
    assert result["usage"]["totalTokens"] == 9
    assert fake.requests[-1].body["stream"] is True


async def test_ai_embed_and_embed_many(gateway: Gateway):
    result = await run("ai/embed.mjs", gateway)
    assert result["one"] == [0.5] * 8
    assert result["many"] == [[0.5] * 8, [0.5] * 8]


async def test_ai_wrong_key_is_an_api_call_error_with_status_401(gateway: Gateway):
    error = (await run("ai/bad-key.mjs", gateway, HXGW_BAD_KEY=new_key()))["error"]
    assert error["isAPICallError"] is True
    assert (error["statusCode"], error["isRetryable"]) == (401, False)
