"""`hxgw demo-upstream` takes what the gateway takes, refuses in OpenAI's shape, and
speaks Anthropic's Messages API and the Responses API too."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import AsyncIterator

import aiohttp
import anthropic
import openai
import pytest

from tests.fixtures import HXGW, free_port, wait_http

BIG = "x" * (2 * 1024 * 1024)  # over aiohttp's 1 MiB default, under the gateway's 16 MiB


@pytest.fixture
async def demo() -> AsyncIterator[str]:
    port = free_port()
    process = subprocess.Popen([HXGW, "demo-upstream", "--port", str(port), "--chunk-delay", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_http(url + "/v1/models")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


async def test_the_demo_accepts_a_body_the_gateway_accepts(demo: str):
    body = json.dumps({"model": "llm02-phi3", "messages": [{"role": "user", "content": BIG}]})
    async with aiohttp.ClientSession() as client, \
            client.post(demo + "/v1/chat/completions", data=io.BytesIO(body.encode()),
                        headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["object"] == "chat.completion"


async def test_a_body_over_the_limit_gets_an_openai_shaped_413(demo: str):
    body = b'{"model": "llm02-phi3", "input": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    async with aiohttp.ClientSession() as client, \
            client.post(demo + "/v1/embeddings", data=io.BytesIO(body),
                        headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/json"
        error = (await resp.json())["error"]
    assert error["code"] == "request_too_large"
    assert "16777216-byte limit" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


async def test_the_demo_streams_anthropic_messages_as_the_anthropic_sdk_reads_them(demo: str):
    async with anthropic.AsyncAnthropic(base_url=demo, api_key="sk-demo", max_retries=0) as sdk:
        plain = await sdk.messages.create(model="llm02-phi3", max_tokens=32, messages=[
            {"role": "user", "content": "Count to 4"}])
        async with sdk.messages.stream(model="llm02-phi3", max_tokens=32, messages=[
                {"role": "user", "content": "Count to 4"}]) as stream:
            streamed = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
        counted = await sdk.messages.count_tokens(model="llm02-phi3", messages=[
            {"role": "user", "content": "Count to 4"}])
    assert plain.content[0].text == streamed == "1 2 3 4"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 4 and counted.input_tokens == 3


async def test_the_demo_speaks_the_responses_api_plain_streamed_and_as_a_follow_up(demo: str):
    async with openai.AsyncOpenAI(base_url=demo + "/v1", api_key="demo", max_retries=0) as sdk:
        first = await sdk.responses.create(model="llm02-phi3",
                                           input="Return exactly the text: HX-OK")
        stream = await sdk.responses.create(model="llm02-phi3", input="Count to 3",
                                            stream=True, previous_response_id=first.id)
        kinds = [event.type async for event in stream]
        read = await sdk.responses.retrieve(first.id)
    assert first.output_text == read.output_text == "HX-OK"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 3
