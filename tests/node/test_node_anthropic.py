"""Anthropic's Messages API through the gateway with the official node anthropic SDK
(`@anthropic-ai/sdk`), plain and streamed, the key sent as `x-api-key` as the SDK does.

Anthropic's README names Node 20 as the oldest it supports; 1.16 declares no `engines`
and runs on Debian 12's node 18 (CI's), as `openai` 6 does, so it is pinned here."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway
from tests.fake_anthropic import INPUT_TOKENS
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, new_key
from tests.node.test_node_sdks import GREETING, run

pytestmark = pytest.mark.node


async def test_anthropic_message_is_answered_by_the_groups_model_with_the_upstreams_key(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(upstream_key=new_key("sk-upstream"))
    message = (await run("anthropic/messages.mjs", gateway))["message"]
    assert message["content"] == [{"type": "text", "text": GREETING}]
    assert (message["stop_reason"], message["usage"]["input_tokens"]) == ("end_turn", INPUT_TOKENS)
    seen = fake.requests[-1]
    assert (seen.path, seen.model) == ("/v1/messages", "m-alpha")
    # The SDK's x-api-key (the client's key) stays at the gateway; the upstream's goes on.
    assert (seen.headers["Authorization"], "x-api-key" in seen.headers) == (
        f"Bearer {gateway.upstream_key}", False)


async def test_anthropic_streamed_message_arrives_event_by_event(gateway: Gateway):
    result = await run("anthropic/messages.mjs", gateway, HXGW_STREAM="1")
    assert result["types"] == ["message_start", "content_block_start",
                               *["content_block_delta"] * 6, "content_block_stop",
                               "message_delta", "message_stop"]
    assert result["deltas"] == ["Hello", " there", " from", " the", " fake", " upstream"]
    message = result["message"]
    assert message["content"] == [{"type": "text", "text": GREETING}]
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (
        INPUT_TOKENS, 6)
