"""The Responses API (`POST /v1/responses`) through the gateway, driven by the node openai
SDK (`client.responses.create`) and by the Vercel AI SDK's default `@ai-sdk/openai` model,
which speaks it: plain and streamed, against a real `hxgw serve` and the fake upstream."""

from __future__ import annotations

import pytest

from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway
from tests.node.test_node_sdks import GREETING, run

pytestmark = pytest.mark.node


async def test_openai_response_is_answered_by_the_groups_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/responses.mjs", gateway)
    assert result["text"] == GREETING and result["status"] == "completed"
    assert result["usage"]["output_tokens"] > 0
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/responses", "m-alpha")


async def test_openai_streamed_response_arrives_event_by_event_in_sequence(gateway: Gateway):
    result = await run("openai/responses-stream.mjs", gateway)
    assert result["types"][0] == "response.created"
    assert result["types"][-1] == "response.completed"
    assert result["sequenceNumbers"] == sorted(set(result["sequenceNumbers"]))
    assert len(result["deltas"]) > 1 and result["text"] == GREETING
    assert result["status"] == "completed" and result["usage"]["output_tokens"] > 0


async def test_ai_generate_text_with_the_default_responses_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("ai/responses-generate-text.mjs", gateway)
    assert result["text"] == GREETING and result["finishReason"] == "stop"
    assert result["usage"]["outputTokens"] > 0
    assert fake.requests[-1].path == "/v1/responses"


async def test_ai_stream_text_with_the_default_responses_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("ai/responses-stream-text.mjs", gateway)
    assert len(result["parts"]) > 1 and result["text"] == GREETING
    assert result["errors"] == [] and result["finishReason"] == "stop"
    assert result["usage"]["outputTokens"] > 0
    assert fake.requests[-1].body["stream"] is True
