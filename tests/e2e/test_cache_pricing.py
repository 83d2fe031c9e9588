"""A prompt read from or written to a provider's cache, billed at the price the registry
gives it (as the providers bill it: Anthropic a read at a tenth of the input price, a
write at 1.25 times), and at the input price where it gives none."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from tests.conftest import StartGateway
from tests.fake_anthropic import CACHED_TOKENS, INPUT_TOKENS
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, ledger_rows, wait_for

CACHE_PRICES = {"input_per_mtok": 3, "output_per_mtok": 15, "cache_read_per_mtok": 0.3,
                "cache_write_per_mtok": 3.75}
HI = [{"role": "user", "content": "hi"}]
SYSTEM = [{"type": "text", "text": "a long system prompt", "cache_control": {"type": "ephemeral"}}]


async def _gateway(start_gateway: StartGateway, price: dict[str, float]) -> Gateway:
    return await start_gateway(models=[dict(m, price=price) for m in DEFAULT_MODELS])


async def _row(gateway: Gateway) -> dict[str, object]:
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    return row


async def _cached_message(gateway: Gateway, stream: bool = False) -> None:
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=gateway.key,
                                        max_retries=0) as sdk:
        if stream:
            async with sdk.messages.stream(model="chat", max_tokens=64, system=SYSTEM,
                                           messages=HI) as events:
                answer = await events.get_final_message()
        else:
            answer = await sdk.messages.create(model="chat", max_tokens=64, system=SYSTEM,
                                               messages=HI)
    assert answer.usage.cache_read_input_tokens == CACHED_TOKENS


@pytest.mark.parametrize("stream", [False, True])
async def test_an_anthropic_prompt_read_from_the_cache_is_billed_at_its_cache_price(
    start_gateway: StartGateway, stream: bool
):
    gateway = await _gateway(start_gateway, CACHE_PRICES)
    await _cached_message(gateway, stream)
    row = await _row(gateway)
    expected = (INPUT_TOKENS * 3 + CACHED_TOKENS * 0.3 + int(row["completion_tokens"]) * 15) / 1e6
    # The prompt is all of it: what came from the cache, what went to it, and the rest.
    assert (row["prompt_tokens"], row["usage_source"]) == (INPUT_TOKENS + CACHED_TOKENS,
                                                           "reported")
    assert row["cost"] == pytest.approx(expected)


async def test_a_cached_prompt_without_a_cache_price_is_billed_at_the_input_price(
    start_gateway: StartGateway,
):
    gateway = await _gateway(start_gateway, {"input_per_mtok": 3, "output_per_mtok": 15})
    await _cached_message(gateway)
    row = await _row(gateway)
    prompt = INPUT_TOKENS + CACHED_TOKENS
    assert row["cost"] == pytest.approx((prompt * 3 + int(row["completion_tokens"]) * 15) / 1e6)


async def _openai_chat_row(start_gateway: StartGateway, client: aiohttp.ClientSession,
                           fake: FakeUpstream, usage: dict[str, object]) -> dict[str, object]:
    """The ledger row of one chat the upstream answers as OpenAI does, with `usage`."""
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m-alpha",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                           "finish_reason": "stop"}],
              "usage": usage}
    fake.behave("m-alpha", script=((0.0, json.dumps(answer).encode()),))
    gateway = await _gateway(start_gateway, CACHE_PRICES)
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"model": "chat", "messages": HI}) as resp:
        assert resp.status == 200
    return await _row(gateway)


async def test_an_openai_prompt_read_from_the_cache_is_billed_at_its_cache_price(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # OpenAI counts the cached part inside prompt_tokens, in prompt_tokens_details.
    row = await _openai_chat_row(start_gateway, client, fake, {
        "prompt_tokens": 5000, "completion_tokens": 10, "total_tokens": 5010,
        "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0}})
    assert row["cost"] == pytest.approx((904 * 3 + 4096 * 0.3 + 10 * 15) / 1e6)


async def test_the_ledger_row_keeps_the_cached_and_reasoning_tokens_openai_reports(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # As OpenAI's usage has them: parts of prompt_tokens and completion_tokens, in details.
    row = await _openai_chat_row(start_gateway, client, fake, {
        "prompt_tokens": 5000, "completion_tokens": 300, "total_tokens": 5300,
        "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0}})
    assert (row["prompt_tokens"], row["cached_tokens"], row["cache_write_tokens"],
            row["completion_tokens"], row["reasoning_tokens"]) == (5000, 4096, 0, 300, 256)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_ledger_row_keeps_the_cache_reads_anthropic_reports(
    start_gateway: StartGateway, stream: bool
):
    gateway = await _gateway(start_gateway, CACHE_PRICES)
    await _cached_message(gateway, stream)
    row = await _row(gateway)
    assert (row["cached_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == (
        CACHED_TOKENS, 0, 0)


async def test_a_cached_count_past_the_prompt_it_is_part_of_counts_as_the_whole_prompt(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # An upstream's garbage: 1M of a 100-token prompt read from the cache. Taken as it
    # came, the cache's discount ran below zero and took the completion's price with it.
    row = await _openai_chat_row(start_gateway, client, fake, {
        "prompt_tokens": 100, "completion_tokens": 1000, "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 1_000_000}})
    assert (row["prompt_tokens"], row["cached_tokens"]) == (100, 100)
    assert row["cost"] == pytest.approx((100 * 0.3 + 1000 * 15) / 1e6)
