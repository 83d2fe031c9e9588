"""`hxgw demo-upstream` takes what the gateway takes, refuses in OpenAI's shape, and
speaks Anthropic's Messages API, the Responses API, moderation, rerank, files and
batches too: through the gateway, as a newcomer's `make run` serves them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest

from tests.conftest import StartGateway
from tests.fixtures import DEFAULT_MODELS, HXGW, Gateway, free_port, wait_http

BIG = "x" * (2 * 1024 * 1024)  # over aiohttp's 1 MiB default, under the gateway's 32 MiB


@contextlib.asynccontextmanager
async def running_demo(chunk_delay: float = 0.0) -> AsyncIterator[str]:
    """`hxgw demo-upstream` on a free port, and its URL."""
    port = free_port()
    process = subprocess.Popen([HXGW, "demo-upstream", "--port", str(port), "--chunk-delay",
                                str(chunk_delay)],
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


@pytest.fixture
async def demo() -> AsyncIterator[str]:
    async with running_demo() as url:
        yield url


async def test_a_client_that_leaves_a_demo_stream_leaves_no_traceback(tmp_path: Path):
    port, output = free_port(), tmp_path / "demo.out"
    with output.open("wb") as out:
        process = subprocess.Popen([HXGW, "demo-upstream", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    body = {"model": "x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    try:
        await wait_http(url + "/v1/models")
        async with aiohttp.ClientSession() as session, session.post(
            url + "/v1/chat/completions", json=body
        ) as resp:
            await resp.content.readuntil(b"\n\n")  # one chunk, then it leaves
        await asyncio.sleep(0.5)  # the demo's next write finds the client gone
    finally:
        process.terminate()
        process.wait(10)
    assert "Traceback" not in output.read_text()


async def test_the_demo_accepts_a_body_the_gateway_accepts(demo: str):
    body = json.dumps({"model": "llm02-phi3", "messages": [{"role": "user", "content": BIG}]})
    async with aiohttp.ClientSession() as client, \
            client.post(demo + "/v1/chat/completions", data=io.BytesIO(body.encode()),
                        headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["object"] == "chat.completion"


async def test_a_chat_without_messages_gets_openai_s_400_as_the_real_api_answers(demo: str):
    async with aiohttp.ClientSession() as client, \
            client.post(demo + "/v1/chat/completions", json={"model": "llm02-phi3"}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error == {"message": "Missing required parameter: 'messages'.",
                     "type": "invalid_request_error", "param": "messages",
                     "code": "missing_required_parameter"}


async def test_a_body_over_the_limit_gets_an_openai_shaped_413(demo: str):
    body = b'{"model": "llm02-phi3", "input": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    async with aiohttp.ClientSession() as client, \
            client.post(demo + "/v1/embeddings", data=io.BytesIO(body),
                        headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/json"
        error = (await resp.json())["error"]
    assert error["code"] == "request_too_large"
    assert "33554432-byte limit" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


async def test_the_demo_s_text_completions_carry_cmpl_ids_as_openai_s_do(demo: str):
    body = {"model": "llm02-phi3", "prompt": "Count to 3"}
    async with aiohttp.ClientSession() as client:
        async with client.post(demo + "/v1/completions", json=body) as resp:
            plain = await resp.json()
        async with client.post(demo + "/v1/completions", json={**body, "stream": True}) as resp:
            events = [json.loads(line[6:]) for line in (await resp.text()).splitlines()
                      if line.startswith("data: {")]
    assert plain["object"] == "text_completion" and plain["id"].startswith("cmpl-")
    assert events and all(event["id"].startswith("cmpl-") for event in events)


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


async def test_the_demo_s_embeddings_come_as_base64_when_asked_and_as_numbers_otherwise(
    demo: str,
):
    async with openai.AsyncOpenAI(base_url=demo + "/v1", api_key="demo", max_retries=0) as sdk:
        # Asked by the caller, the SDK hands the base64 text on as it came.
        coded = await sdk.embeddings.create(model="emb", input="hi", encoding_format="base64")
        plain = await sdk.embeddings.create(model="emb", input="hi", encoding_format="float")
        # Asked by nobody, the SDK asks for base64 itself and decodes it to numbers.
        decoded = await sdk.embeddings.create(model="emb", input="hi")
    vector = plain.data[0].embedding
    values = struct.unpack(f"<{len(vector)}f", base64.b64decode(str(coded.data[0].embedding)))
    assert [round(v, 6) for v in values] == vector
    assert decoded.data[0].embedding == pytest.approx(vector, abs=1e-6)


@pytest.fixture
async def before_demo(demo: str, start_gateway: StartGateway) -> Gateway:
    return await start_gateway(upstream_url=demo)


def _sdk(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)


async def test_the_demo_stops_a_chat_at_its_max_tokens_as_a_model_does(before_demo: Gateway):
    count = [{"role": "user", "content": "Count to 9"}]
    async with _sdk(before_demo) as sdk:
        plain = await sdk.chat.completions.create(model="chat", messages=count, max_tokens=3)
        stream = await sdk.chat.completions.create(
            model="chat", messages=count, max_completion_tokens=2, stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert plain.choices[0].message.content == "1 2 3"
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage is not None and plain.usage.completion_tokens == 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "1 2"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


async def test_the_demo_stops_messages_and_responses_at_their_token_limits(demo: str):
    count = [{"role": "user", "content": "Count to 9"}]
    async with anthropic.AsyncAnthropic(base_url=demo, api_key="sk-demo", max_retries=0) as sdk:
        message = await sdk.messages.create(model="llm02-phi3", max_tokens=2, messages=count)
    async with openai.AsyncOpenAI(base_url=demo + "/v1", api_key="demo", max_retries=0) as oa:
        response = await oa.responses.create(model="llm02-phi3", input="Count to 9",
                                             max_output_tokens=4)
        stream = await oa.responses.create(model="llm02-phi3", input="Count to 9",
                                           max_output_tokens=4, stream=True)
        kinds = [event.type async for event in stream]
    assert message.content[0].text == "1 2"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2
    assert response.output_text == "1 2 3 4" and response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert kinds[-1] == "response.incomplete"


async def test_the_demo_streams_a_kept_response_again_after_a_sequence_number_through_the_gateway(
    before_demo: Gateway,
):
    # As a reader whose stream broke picks it up: `stream=true`, `starting_after`.
    async with _sdk(before_demo) as sdk:
        made = await sdk.responses.create(model="chat", input="Count to 3", stream=True)
        first = [event async for event in made]
        again = await sdk.responses.retrieve(first[0].response.id, stream=True,  # type: ignore[union-attr]
                                             starting_after=3)
        rest = [event async for event in again]
    assert [(e.type, e.sequence_number) for e in rest] == [
        (e.type, e.sequence_number) for e in first[4:]]
    assert rest[-1].response.output_text == "1 2 3"  # type: ignore[union-attr]


async def test_the_demo_streams_a_response_still_being_written_as_far_as_it_goes():
    async with running_demo(chunk_delay=0.5) as url, openai.AsyncOpenAI(
        base_url=url + "/v1", api_key="demo", max_retries=0
    ) as sdk:
        made = await sdk.responses.create(model="x", input="Count to 9", stream=True)
        created = await made.__anext__()
        again = await sdk.responses.retrieve(created.response.id, stream=True)  # type: ignore[union-attr]
        so_far = [event.type async for event in again]
        await made.close()
    assert so_far == ["response.created", "response.in_progress"]


async def test_the_demo_refuses_a_starting_after_that_is_no_number_with_a_400(demo: str):
    async with aiohttp.ClientSession() as session:
        async with session.post(demo + "/v1/responses", json={"model": "x", "input": "hi"}) as made:
            ident = (await made.json())["id"]
        async with session.get(f"{demo}/v1/responses/{ident}",
                               params={"stream": "true", "starting_after": "--5"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "starting_after"


async def test_the_demo_answers_the_calls_on_a_response_through_the_gateway(
    before_demo: Gateway,
):
    conversation = [{"role": "user", "content": "Count to 2"},
                    {"role": "user", "content": "Count to 3"}]
    async with _sdk(before_demo) as sdk:
        made = await sdk.responses.create(model="chat", input=conversation)  # type: ignore[arg-type]
        newest_first = await sdk.responses.input_items.list(made.id, limit=1)
        every = [item async for item in sdk.responses.input_items.list(made.id, order="asc")]
        counted = await sdk.responses.input_tokens.count(model="chat", input="one two three")
        compacted = await sdk.responses.compact(model="chat", previous_response_id=made.id,
                                                input="Count to 4")
        background = await sdk.responses.create(model="chat", input="hi", background=True)
        cancelled = await sdk.responses.cancel(background.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.cancel(made.id)
    assert [i.content[0].text for i in newest_first.data] == ["Count to 3"]  # type: ignore[union-attr]
    assert newest_first.has_more and len(every) == 2 and every[-1].id == newest_first.data[0].id
    assert counted.input_tokens == 3
    assert [o.type for o in compacted.output] == ["message", "message", "message", "compaction"]
    assert cancelled.id == background.id and cancelled.background is True
    assert "Only responses created with background=true can be cancelled" in str(refused.value)


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/responses/input_tokens",
                                  "/v1/responses/compact"])
async def test_the_demo_finds_no_previous_response_by_a_list_and_says_so(demo: str, path: str):
    body = {"model": "llm02-phi3", "input": "hi", "previous_response_id": ["resp_x"]}
    async with aiohttp.ClientSession() as client, client.post(demo + path, json=body) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["param"] == "previous_response_id"


def _line(custom_id: str, url: str, body: dict[str, object]) -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url,
                       "body": body}).encode() + b"\n"


async def test_a_batch_through_the_gateway_completes_with_the_demos_answers(
        before_demo: Gateway):
    lines = (_line("exact", "/v1/chat/completions", {"model": "chat", "messages": [
                 {"role": "user", "content": "Return exactly the text: HX-OK"}]})
             + _line("count", "/v1/chat/completions", {"model": "chat", "messages": [
                 {"role": "user", "content": "Count to 3"}]})
             + b"not a request\n"
             + _line("elsewhere", "/v1/embeddings", {"model": "emb", "input": "x"}))
    async with _sdk(before_demo) as sdk:
        uploaded = await sdk.files.create(file=("in.jsonl", lines), purpose="batch")
        created = await sdk.batches.create(input_file_id=uploaded.id,
                                           endpoint="/v1/chat/completions",
                                           completion_window="24h")
        batch = await sdk.batches.retrieve(created.id)
        assert batch.output_file_id and batch.error_file_id
        output = (await sdk.files.content(batch.output_file_id)).text
        errors = (await sdk.files.content(batch.error_file_id)).text
    assert created.status == "validating" and batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed,
            batch.request_counts.failed) == (4, 2, 2)
    answers = {row["custom_id"]: row["response"]["body"]["choices"][0]["message"]["content"]
               for row in map(json.loads, output.splitlines())}
    assert answers == {"exact": "HX-OK", "count": "1 2 3"}
    assert [json.loads(row)["error"]["line"] for row in errors.splitlines()] == [3, 4]


async def test_the_demo_pages_its_files_and_forgets_a_deleted_one(before_demo: Gateway):
    async with _sdk(before_demo) as sdk:
        first = await sdk.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
        second = await sdk.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
        page = await sdk.files.list(limit=1)
        assert [f.id for f in page.data] == [second.id] and page.has_more
        assert (await sdk.files.delete(first.id)).deleted
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.files.retrieve(first.id)
    assert f"No such File object: {first.id}" in str(missing.value)


async def test_the_demo_moderates_and_reranks_through_the_gateway(
    demo: str, start_gateway: StartGateway
):
    scorers = [{"name": name, "tier_score": 0.5, "specializations": [], "mode": name}
               for name in ("moderation", "rerank")]
    gateway = await start_gateway(upstream_url=demo, models=[*DEFAULT_MODELS, *scorers])
    async with _sdk(gateway) as sdk:
        moderated = await sdk.moderations.create(model="moderation",
                                                 input=["hello", "attack them"])
    assert [r.flagged for r in moderated.results] == [False, True]
    body = {"model": "rerank", "query": "red apples", "documents": ["blue sky", "red apples"]}
    async with aiohttp.ClientSession() as client, client.post(
            gateway.url + "/v1/rerank", json=body, headers=gateway.auth) as resp:
        ranked = await resp.json()
    assert [r["index"] for r in ranked["results"]] == [1, 0]
