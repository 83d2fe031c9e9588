"""langchain's OpenAI and Anthropic chat models, pointed at the gateway, work as with the
real APIs: answers, streams, usage, tool calls, embeddings and the SDK errors beneath."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_anthropic._client_utils import _get_default_async_httpx_client
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests import one_gateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, new_key

upstream, gateway = one_gateway.upstream, one_gateway.gateway


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # langchain would otherwise keep one client per base URL for the process's life, its
    # connections bound to this test's closed event loop.
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def _chat(gateway: Gateway, http: httpx.AsyncClient, key: str | None = None,
          model: str = "chat", **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(base_url=gateway.url + "/v1", api_key=key or gateway.key,
                      model=model, max_retries=0, http_async_client=http, **kwargs)


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def _sse(*chunks: dict[str, object]) -> tuple[tuple[float, bytes], ...]:
    """An OpenAI chat stream as it is written: one data line per chunk, then [DONE]."""
    lines = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    return tuple((0.0, line) for line in [*lines, b"data: [DONE]\n\n"])


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {"id": "chatcmpl-lc1", "object": "chat.completion.chunk", "created": 1733300000,
            "model": "m-alpha", "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]}


async def test_a_chat_model_answers_with_the_upstream_usage(
    gateway: Gateway, http: httpx.AsyncClient, fake: FakeUpstream
):
    reply = await _chat(gateway, http).ainvoke("hi")
    assert reply.content == "Hello there from the fake upstream"
    assert reply.usage_metadata is not None
    assert (reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]) == (3, 6)
    assert fake.requests[-1].model == "m-alpha"


async def test_a_streamed_answer_arrives_in_pieces_with_its_usage_last(
    gateway: Gateway, http: httpx.AsyncClient
):
    pieces = [chunk async for chunk in _chat(gateway, http, stream_usage=True).astream("hi")]
    assert len([p for p in pieces if p.content]) == 6
    whole = pieces[0]
    for piece in pieces[1:]:
        whole += piece
    assert isinstance(whole, AIMessageChunk)
    assert whole.content == "Hello there from the fake upstream"
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] == 6


async def test_a_stream_that_did_not_ask_for_usage_gets_no_usage_chunk(
    gateway: Gateway, http: httpx.AsyncClient
):
    pieces = [chunk async for chunk in _chat(gateway, http, stream_usage=False).astream("hi")]
    assert "".join(str(p.content) for p in pieces) == "Hello there from the fake upstream"
    assert all(p.usage_metadata is None for p in pieces)


async def test_a_tool_call_comes_back_as_the_tool_and_its_arguments(
    gateway: Gateway, http: httpx.AsyncClient, fake: FakeUpstream
):
    answer = {"id": "chatcmpl-lc2", "object": "chat.completion", "created": 1733300000,
              "model": "m-alpha", "choices": [{"index": 0, "finish_reason": "tool_calls",
              "message": {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "call_1", "type": "function", "function": {
                      "name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]}}],
              "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}}
    fake.behave("m-alpha", script=((0.0, json.dumps(answer).encode()),))
    reply = await _chat(gateway, http).bind_tools([weather]).ainvoke("weather in Oslo?")
    assert reply.tool_calls == [
        {"name": "weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}]
    sent = fake.requests[-1].body
    assert sent["tools"][0]["function"]["name"] == "weather"
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]


async def test_a_streamed_tool_call_is_put_together_from_its_pieces(
    gateway: Gateway, http: httpx.AsyncClient, fake: FakeUpstream
):
    call = {"index": 0, "id": "call_9", "type": "function",
            "function": {"name": "weather", "arguments": ""}}
    fake.behave("m-alpha", script=_sse(
        _chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Bergen\"}"}}]}),
        _chunk({}, finish="tool_calls")))
    pieces = [c async for c in _chat(gateway, http).bind_tools([weather]).astream("weather?")]
    whole = pieces[0]
    for piece in pieces[1:]:
        whole += piece
    assert isinstance(whole, AIMessageChunk)
    assert whole.tool_calls == [
        {"name": "weather", "args": {"city": "Bergen"}, "id": "call_9", "type": "tool_call"}]


async def test_embeddings_come_back_one_vector_per_text(
    gateway: Gateway, http: httpx.AsyncClient, fake: FakeUpstream
):
    # Without check_embedding_ctx_length langchain sends the texts, not tiktoken's token
    # ids (whose tables it would download).
    embeddings = OpenAIEmbeddings(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  model="emb", check_embedding_ctx_length=False, max_retries=0,
                                  http_async_client=http)
    vectors = await embeddings.aembed_documents(["HX-OK", "second"])
    assert [len(v) for v in vectors] == [8, 8]
    assert fake.requests[-1].body["prompt"] == ["HX-OK", "second"]  # the test config's rename


async def test_a_wrong_key_surfaces_as_the_sdks_authentication_error(
    gateway: Gateway, http: httpx.AsyncClient
):
    with pytest.raises(openai.AuthenticationError):
        await _chat(gateway, http, key=new_key()).ainvoke("hi")


async def test_an_unknown_model_surfaces_as_the_sdks_not_found_error(
    gateway: Gateway, http: httpx.AsyncClient
):
    with pytest.raises(openai.NotFoundError):
        await _chat(gateway, http, model="gpt-nope").ainvoke("hi")


async def test_an_upstream_rate_limit_surfaces_as_the_sdks_rate_limit_error(
    own_gateway: Gateway, http: httpx.AsyncClient, fake: FakeUpstream
):
    gateway = own_gateway  # a Retry-After opens the model's circuit for that long
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, status=429, retry_after="1")
    with pytest.raises(openai.RateLimitError):
        await _chat(gateway, http).ainvoke("hi")


@pytest.fixture
async def claude(gateway: Gateway) -> AsyncIterator[ChatAnthropic]:
    model = ChatAnthropic(base_url=gateway.url, api_key=gateway.key,
                          model="chat", max_retries=0, max_tokens=64)
    yield model
    # It takes no client of ours, and keeps its own for the process's life, one per base
    # URL: closed, it is forgotten too, or the next test on the shared gateway met it closed.
    await model._async_client.close()
    _get_default_async_httpx_client.cache_clear()


async def test_the_anthropic_chat_model_answers_through_the_messages_route(
    claude: ChatAnthropic, fake: FakeUpstream
):
    reply = await claude.ainvoke("hi")
    assert reply.content == "Hello there from the fake upstream"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 6
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/messages", "m-alpha")


async def test_the_anthropic_chat_model_streams_through_the_messages_route(
    claude: ChatAnthropic,
):
    pieces = [chunk async for chunk in claude.astream("hi")]
    assert "".join(str(p.content) for p in pieces if isinstance(p.content, str)) == (
        "Hello there from the fake upstream")
