"""The Responses API (`/v1/responses`) through the gateway, driven by the node openai SDK
(`client.responses.*`) and by the Vercel AI SDK's default `@ai-sdk/openai` model, which
speaks it: plain and streamed, continued, read and deleted by the ids the gateway gives."""

from __future__ import annotations

import pytest

from tests.fake_responses import INPUT_TOKENS
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway
from tests.node.test_node_sdks import GREETING, run

pytestmark = pytest.mark.node

WORDS = ["Hello", " there", " from", " the", " fake", " upstream"]
USAGE = {"input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
         "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 0},
         "total_tokens": INPUT_TOKENS + 6}


# The official openai SDK (package `openai`).

async def test_openai_response_is_answered_by_the_groups_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/responses.mjs", gateway)
    assert result["text"] == GREETING and result["status"] == "completed"
    assert result["usage"] == USAGE
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/responses", "m-alpha")


async def test_openai_response_id_is_the_gateways_not_the_upstreams(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/responses.mjs", gateway)
    assert result["id"].startswith("resp_") and result["id"] not in fake.responses.made


async def test_openai_streamed_response_arrives_event_by_event_in_sequence(gateway: Gateway):
    result = await run("openai/responses-stream.mjs", gateway)
    assert result["types"] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", *["response.output_text.delta"] * 6,
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert result["sequenceNumbers"] == list(range(len(result["types"])))
    assert result["deltas"] == WORDS
    assert (result["status"], result["usage"]) == ("completed", USAGE)


async def test_openai_follow_up_continues_the_conversation_on_its_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/responses-follow-up.mjs", gateway)
    assert (result["previous"], result["turns"]) == (result["firstId"], "2")
    sent = fake.requests[-1].body["previous_response_id"]
    assert sent in fake.responses.made and sent != result["firstId"]


async def test_openai_response_is_read_listed_and_deleted_by_its_id(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/responses-retrieve-delete.mjs", gateway)
    assert (result["readId"], result["readText"]) == (result["madeId"], GREETING)
    assert result["items"] == ["what is two and two"]
    assert result["afterDelete"] == {"notFound": True, "status": 404}
    assert fake.responses.made == {}


# The Vercel AI SDK (`ai`): `@ai-sdk/openai`'s default model speaks the Responses API.

async def test_ai_generate_text_with_the_default_responses_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("ai/generate-text.mjs", gateway, HXGW_AI_API="responses")
    assert result["text"] == GREETING and result["finishReason"] == "stop"
    assert (result["usage"]["inputTokens"], result["usage"]["outputTokens"]) == (INPUT_TOKENS, 6)
    assert fake.requests[-1].path == "/v1/responses"


async def test_ai_stream_text_with_the_default_responses_model(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("ai/stream-text.mjs", gateway, HXGW_AI_API="responses")
    assert result["parts"] == WORDS
    assert result["errors"] == [] and result["finishReason"] == "stop"
    assert result["usage"]["totalTokens"] == INPUT_TOKENS + 6
    assert (fake.requests[-1].path, fake.requests[-1].body["stream"]) == ("/v1/responses", True)


async def test_ai_follow_up_to_a_streamed_response_continues_it(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("ai/responses-follow-up.mjs", gateway)
    assert result["firstText"] == GREETING
    assert result["firstId"] is not None and result["firstId"] not in fake.responses.made
    assert (result["previous"], result["turns"]) == (result["firstId"], "2")
