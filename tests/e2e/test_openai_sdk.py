"""The official OpenAI Python SDK, pointed at the gateway, works as with OpenAI itself."""

from __future__ import annotations

import json

import openai
import pytest

from tests import one_gateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, new_key

upstream, gateway = one_gateway.upstream, one_gateway.gateway


def _client(gateway: Gateway, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key or gateway.key,
                              max_retries=0, timeout=10)


async def test_the_sdk_reads_a_chat_answer_and_its_usage(gateway: Gateway):
    async with _client(gateway) as client:
        reply = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello there from the fake upstream"
    assert reply.usage is not None and reply.usage.total_tokens > 0


async def test_the_sdk_reads_a_streamed_answer_whole_and_the_usage_it_asked_for(gateway: Gateway):
    async with _client(gateway) as client:
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
    assert "".join(pieces) == "Hello there from the fake upstream"
    assert usage is not None and usage.completion_tokens == 6


def _tool_call_stream() -> bytes:
    """Two tool calls streamed in pieces, as OpenAI streams parallel calls: each opens with
    its id and name, then its arguments a few characters a chunk."""
    calls = [(0, {"id": "call_a", "type": "function",
                  "function": {"name": "get_weather", "arguments": ""}}),
             (0, {"function": {"arguments": '{"city": "Par'}}),
             (0, {"function": {"arguments": 'is"}'}}),
             (1, {"id": "call_b", "type": "function",
                  "function": {"name": "get_time", "arguments": ""}}),
             (1, {"function": {"arguments": '{"tz": "CET"}'}})]
    chunks = [{"role": "assistant", "content": None, "tool_calls": [{"index": 0, **calls[0][1]}]},
              *({"tool_calls": [{"index": i, **call}]} for i, call in calls[1:])]
    lines = [{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
              "model": "m-alpha", "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                               "finish_reason": None}]} for delta in chunks]
    lines.append({**lines[0], "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                           "finish_reason": "tool_calls"}]})
    return b"".join(b"data: " + json.dumps(line).encode() + b"\n\n" for line in lines) \
        + b"data: [DONE]\n\n"


async def test_sdk_streams_parallel_tool_calls_whole_however_the_upstream_cuts_them(
    gateway: Gateway, fake: FakeUpstream
):
    stream = _tool_call_stream()
    fake.behave("m-alpha", script=tuple((0.002, stream[at : at + 37])
                                        for at in range(0, len(stream), 37)))
    async with _client(gateway) as client, client.chat.completions.stream(
        model="chat", messages=[{"role": "user", "content": "weather and time?"}],
    ) as events:
        final = await events.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [(c.id, c.function.name, json.loads(c.function.arguments))
             for c in choice.message.tool_calls or []]
    assert calls == [("call_a", "get_weather", {"city": "Paris"}),
                     ("call_b", "get_time", {"tz": "CET"})]


async def test_sdk_sees_a_mid_stream_failure_as_an_api_error(gateway: Gateway, fake: FakeUpstream):
    fake.behave("m-alpha", content="a b c d", reset_after_chunks=2)
    async with _client(gateway) as client:
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True)
        with pytest.raises(openai.APIError, match="mid-response"):
            async for _ in stream:
                pass


async def test_the_sdk_gets_embeddings_of_the_group_s_dimension(gateway: Gateway):
    async with _client(gateway) as client:
        result = await client.embeddings.create(model="emb", input="HX-OK")
    assert len(result.data[0].embedding) == 8


async def test_the_sdk_lists_the_registry_s_models_and_the_groups(gateway: Gateway):
    async with _client(gateway) as client:
        models = [m.id async for m in client.models.list()]
    assert "alpha" in models and "chat" in models


async def test_sdk_bad_key_raises_authentication_error(gateway: Gateway):
    async with _client(gateway, key=new_key()) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}])


async def test_sdk_unknown_model_raises_not_found(gateway: Gateway):
    async with _client(gateway) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="gpt-nope", messages=[{"role": "user", "content": "hi"}])


async def test_sdk_retrieves_one_group_or_model_by_id(gateway: Gateway):
    async with _client(gateway) as client:
        group = await client.models.retrieve("chat")
        model = await client.models.retrieve("alpha")
        with pytest.raises(openai.NotFoundError) as raised:
            await client.models.retrieve("no-such-model")
    assert (group.id, group.owned_by) == ("chat", "hxgw")
    assert group.model_extra is not None and group.model_extra["hx_models"] == ["alpha", "beta"]
    assert model.id == "alpha"
    assert raised.value.code == "model_not_found"


async def test_sdk_gets_every_choice_that_n_asks_for_plain_and_streamed(gateway: Gateway):
    async with _client(gateway) as client:
        reply = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], n=2)
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], n=2, stream=True)
        texts: dict[int, str] = {}
        finished = []
        async for chunk in stream:
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                if choice.finish_reason:
                    finished.append(choice.index)
    assert [choice.index for choice in reply.choices] == [0, 1]
    assert texts == {0: "Hello there from the fake upstream", 1: "Hello there from the fake upstream"}
    assert sorted(finished) == [0, 1]


async def test_sdk_gets_n_completions_for_each_prompt_of_a_list(gateway: Gateway):
    async with _client(gateway) as client:
        reply = await client.completions.create(model="chat", prompt=["a", "b"], n=2)
    assert [choice.index for choice in reply.choices] == [0, 1, 2, 3]
