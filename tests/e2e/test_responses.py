"""OpenAI's Responses API through the gateway, with the official python SDK: created
plain and streamed, continued, read, listed, cancelled and deleted, every call on a
response reaching the model that made it."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml

from hxgw.upstream.affinity import bind, unbind
from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_responses import INPUT_TOKENS
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, ledger_rows, new_key, wait_for, write_config

upstream, gateway = one_gateway.upstream, one_gateway.gateway


def _sdk(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)


async def test_a_response_is_created_by_the_groups_model(gateway: Gateway, fake: FakeUpstream):
    async with _sdk(gateway) as sdk:
        response = await sdk.responses.create(model="chat", input="say hello")
    assert response.output_text == "Hello there from the fake upstream"
    assert response.status == "completed"
    assert (fake.requests[-1].path, fake.requests[-1].model) == ("/v1/responses", "m-alpha")


async def test_a_responses_stream_relays_every_event_in_order_with_no_done(
    gateway: Gateway, client: aiohttp.ClientSession
):
    body = {"model": "chat", "input": "hi", "stream": True}
    async with client.post(gateway.url + "/v1/responses", json=body, headers=gateway.auth) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    events = [block for block in raw.split("\n\n") if block]
    names = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert names[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert names[-1] == "response.completed"
    sequence = [json.loads(block.split("data: ", 1)[1])["sequence_number"] for block in events]
    assert sequence == list(range(len(events)))
    assert "[DONE]" not in raw


async def test_a_responses_stream_the_upstream_breaks_ends_with_a_numbered_error_event(
    gateway: Gateway, fake: FakeUpstream, client: aiohttp.ClientSession
):
    fake.behave("m-alpha", reset_after_chunks=2)
    body = {"model": "chat", "input": "hi", "stream": True}
    async with client.post(gateway.url + "/v1/responses", json=body, headers=gateway.auth) as resp:
        raw = (await resp.read()).decode()
    events = [block for block in raw.split("\n\n") if block]
    assert events[-1].startswith("event: error\ndata: ")
    error = json.loads(events[-1].split("data: ", 1)[1])
    # As OpenAI documents it (code, message, param on the event) and as it sends it (nested).
    assert (error["type"], error["sequence_number"]) == ("error", len(events) - 1)
    assert error["code"] == error["error"]["code"] == "upstream_unavailable"
    assert error["message"] == error["error"]["message"] and "mid-response" in error["message"]
    assert "param" in error


async def test_the_error_event_is_numbered_by_events_not_by_data_quoted_in_their_text(
    gateway: Gateway, fake: FakeUpstream, client: aiohttp.ClientSession
):
    fake.behave("m-alpha", reset_after_chunks=2, content="data:image/png;base64 data: x")
    body = {"model": "chat", "input": "hi", "stream": True}
    async with client.post(gateway.url + "/v1/responses", json=body, headers=gateway.auth) as resp:
        raw = (await resp.read()).decode()
    events = [block for block in raw.split("\n\n") if block]
    assert "data:image/png" in raw
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert error["sequence_number"] == len(events) - 1


async def test_the_sdk_raises_an_api_error_for_a_responses_stream_the_upstream_breaks(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", reset_after_chunks=2)
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", stream=True)
        with pytest.raises(openai.APIError, match="mid-response"):
            async for _ in stream:
                pass


async def test_the_sdk_raises_for_a_responses_stream_that_ends_before_it_completes(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", end_after_chunks=2)
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", stream=True)
        with pytest.raises(openai.APIError, match="before its final event"):
            async for _ in stream:
                pass


async def test_a_responses_stream_echoing_metadata_typed_error_is_relayed_to_its_end(
    gateway: Gateway, fake: FakeUpstream
):
    # The request's own metadata, echoed in response.created, is no final event: the
    # stream that pauses past it (a reasoning model) is still relayed whole.
    gate = asyncio.Event()
    fake.behave("m-alpha", gate=gate)
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", stream=True,
                                            metadata={"type": "error"})
        kinds = []
        async for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta" and not gate.is_set():
                await asyncio.sleep(1.5)  # longer than the gateway waits after a final event
                gate.set()
    assert kinds[-1] == "response.completed"


async def test_a_stream_echoing_a_file_id_nested_as_deep_as_a_body_may_be_ends_whole(
    gateway: Gateway, client: aiohttp.ClientSession
):
    # response.created nests the tools it echoes one level deeper than the body did, past
    # what the gateway writes back with the file bound: that had raised mid-stream, and
    # the client got a 200 with no event at all.
    schema: object = {"file_id": "file-mine"}
    for _ in range(250):  # the body 254 levels deep, the most the gateway takes
        schema = [schema]
    body = {"model": "chat", "input": "hi", "stream": True,
            "tools": [{"type": "function", "name": "f", "parameters": schema}]}
    async with client.post(gateway.url + "/v1/responses", json=body, headers=gateway.auth) as resp:
        raw = (await resp.read()).decode()
    names = [block.split("\n")[0].removeprefix("event: ") for block in raw.split("\n\n") if block]
    assert names[0] == "response.created"
    assert names[-1] == "response.completed"


async def test_the_sdks_stream_reads_text_deltas_and_the_completed_response(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", stream=True)
        deltas, completed = [], None
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                completed = event.response
    assert "".join(deltas) == "Hello there from the fake upstream"
    assert completed is not None and completed.usage is not None
    assert completed.usage.output_tokens == 6


async def test_the_client_sees_a_response_id_bound_to_its_model_not_the_upstreams(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        response = await sdk.responses.create(model="chat", input="hi")
    upstream_id = next(iter(fake.responses.made))
    assert response.id.startswith("resp_") and response.id != upstream_id


async def test_streamed_response_ids_are_rebound_in_every_event(gateway: Gateway, fake: FakeUpstream):
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", stream=True)
        ids = {event.response.id async for event in stream if hasattr(event, "response")}
    assert len(ids) == 1
    assert ids.isdisjoint(fake.responses.made)


async def test_a_response_can_be_read_listed_and_deleted_through_its_id(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="what is two and two")
        read = await sdk.responses.retrieve(made.id)
        items = await sdk.responses.input_items.list(made.id)
        await sdk.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(made.id)
    assert (read.id, read.output_text) == (made.id, made.output_text)
    assert [item.content[0].text for item in items.data] == ["what is two and two"]
    assert fake.responses.made == {}


async def test_the_sdk_pages_through_a_response_s_input_items(gateway: Gateway):
    said = [{"role": "user", "content": f"turn {n}"} for n in range(5)]
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input=said)  # type: ignore[arg-type]
        first = await sdk.responses.input_items.list(made.id, limit=2, order="asc")
        every = [item async for item in sdk.responses.input_items.list(made.id, limit=2)]
    assert [item.content[0].text for item in first.data] == ["turn 0", "turn 1"]
    assert first.has_more
    # Newest first by default, three pages of two, each after the last one's id.
    assert [item.content[0].text for item in every] == [f"turn {n}" for n in range(4, -1, -1)]


async def test_a_response_made_with_store_false_cannot_be_read_back(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="hi", store=False)
        with pytest.raises(openai.NotFoundError, match=made.id):
            await sdk.responses.retrieve(made.id)
    assert made.store is False and made.output_text


async def test_a_background_response_can_be_cancelled(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="long job", background=True)
        cancelled = await sdk.responses.cancel(made.id)
    assert (cancelled.id, cancelled.status) == (made.id, "cancelled")


async def test_a_follow_up_continues_the_conversation_on_its_model(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        first = await sdk.responses.create(model="chat", input="hi")
        second = await sdk.responses.create(model="chat", input="and?",
                                            previous_response_id=first.id)
    assert second.metadata == {"turns": "2"}
    assert second.previous_response_id == first.id
    sent = fake.requests[-1].body["previous_response_id"]
    assert sent in fake.responses.made and sent != first.id


async def test_the_query_of_a_call_on_a_response_reaches_the_upstream(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="hi")
        await sdk.responses.input_items.list(made.id, limit=5, order="asc")
    seen = fake.requests[-1]
    assert seen.path.endswith("/input_items")
    assert sorted(seen.query.split("&")) == ["limit=5", "order=asc"]


async def test_an_id_the_gateway_did_not_make_is_not_found(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.get(gateway.url + "/v1/responses/resp_abc123", headers=gateway.auth) as resp:
        assert resp.status == 404
        error = (await resp.json())["error"]
    assert "resp_abc123" in error["message"]
    assert fake.requests == []


async def test_a_follow_up_of_an_unknown_id_is_refused_before_any_upstream(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        with pytest.raises(openai.NotFoundError) as raised:
            await sdk.responses.create(model="chat", input="hi", previous_response_id="resp_x")
    assert raised.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert fake.requests == []


async def test_a_previous_response_id_that_is_not_a_string_is_a_400_naming_it(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    body = {"model": "chat", "input": "hi", "previous_response_id": 42}
    async with client.post(gateway.url + "/v1/responses", json=body,
                           headers=gateway.auth) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["param"] == "previous_response_id"
    assert fake.requests == []


async def test_an_id_with_slashes_in_it_reaches_only_its_response_s_upstream_path(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Bound ids are unsigned: a client can make one whose upstream id climbs out of
    # /v1/responses/ to another of the upstream's routes, sent the gateway's own key.
    made_up = bind("model", "alpha", "resp_a/../../key/info")
    async with client.get(gateway.url + f"/v1/responses/{made_up}", headers=gateway.auth):
        pass
    assert [r.raw_path for r in fake.requests] == ["/v1/responses/resp_a%2F..%2F..%2Fkey%2Finfo"]


async def test_a_made_up_id_naming_an_embedding_model_is_not_found_and_not_sent(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    made_up = bind("model", "embed", "resp_abc")
    async with client.get(gateway.url + f"/v1/responses/{made_up}", headers=gateway.auth) as resp:
        assert resp.status == 404
        message = (await resp.json())["error"]["message"]
    assert "'embed', which serves embedding requests, not responses" in message
    body = {"model": "chat", "input": "and?", "previous_response_id": made_up}
    async with client.post(gateway.url + "/v1/responses", json=body, headers=gateway.auth) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["param"] == "previous_response_id"
    assert fake.requests == []


async def test_a_follow_up_read_back_names_the_response_before_it_by_the_client_s_id(
    gateway: Gateway,
):
    async with _sdk(gateway) as sdk:
        first = await sdk.responses.create(model="chat", input="hi")
        second = await sdk.responses.create(model="chat", input="and?",
                                            previous_response_id=first.id)
        read = await sdk.responses.retrieve(second.id)
        third = await sdk.responses.create(model="chat", input="more",
                                           previous_response_id=read.previous_response_id)
    assert read.previous_response_id == first.id
    assert third.previous_response_id == first.id


async def test_an_upstream_s_not_found_quotes_the_id_the_client_sent(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="hi")
        await sdk.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.responses.retrieve(made.id)
    assert missing.value.message.endswith(f"Response with id '{made.id}' not found.")


async def test_a_call_on_a_response_takes_the_key_and_refuses_others(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.delete(gateway.url + "/v1/responses/resp_x") as resp:
        assert resp.status == 401


async def test_a_wrong_method_on_a_response_gets_405_with_allow(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.put(gateway.url + "/v1/responses/resp_x", headers=gateway.auth) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "DELETE, GET"


async def test_a_streamed_responses_usage_is_read_from_its_completed_event(
    own_gateway: Gateway, client: aiohttp.ClientSession
):
    gateway = own_gateway  # it reads the token counts in /metrics
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", stream=True)
        async for _ in stream:
            pass
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        metrics = await resp.text()
    assert f'hxgw_tokens_total{{kind="prompt",model="alpha"}} {INPUT_TOKENS}.0' in metrics
    assert 'hxgw_tokens_total{kind="completion",model="alpha"} 6.0' in metrics


async def test_a_plain_responses_usage_goes_to_the_ledger(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        await sdk.responses.create(model="chat", input="hi")
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    assert [(r["route"], r["prompt_tokens"], r["completion_tokens"], r["usage_source"])
            for r in ledger_rows(gateway)] == [("responses", INPUT_TOKENS, 6, "reported")]


async def test_a_responses_stream_cut_before_it_completed_is_not_billed_by_a_usage_in_its_tools(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The response's first events repeat the tools, with this usage in their schema.
    fake_usage = {"type": "object", "usage": {"input_tokens": 0, "output_tokens": 0}}
    tool = {"type": "function", "name": "f", "parameters": fake_usage}
    body = {"model": "chat", "input": "w " * 400, "tools": [tool], "stream": True}
    fake.behave("m-alpha", content="one two three", gate=asyncio.Event())
    async with client.post(gateway.url + "/v1/responses", json=body,
                           headers=gateway.auth) as stream:
        async for line in stream.content:
            if b"response.output_text.delta" in line:
                break  # the upstream holds the rest: the client leaves here
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["disconnected"], row["usage_source"]) == (1, "estimated")
    assert row["prompt_tokens"] >= len(json.dumps(body)) // 4


async def test_a_usage_followed_by_a_long_metadata_is_still_read(gateway: Gateway):
    metadata = {f"k{i}": "x" * 512 for i in range(16)}  # OpenAI's most
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="hi", metadata=metadata)
    assert made.metadata is not None and made.metadata["k15"] == "x" * 512
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["prompt_tokens"], row["usage_source"]) == (INPUT_TOKENS, "reported")


async def test_reading_a_response_back_bills_its_usage_no_second_time(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="hi")
        read = await sdk.responses.retrieve(made.id)
    assert read.usage is not None and read.usage.input_tokens == INPUT_TOKENS
    await wait_for(lambda: len(ledger_rows(gateway)) == 2, timeout=10)
    assert sorted((r["route"], r["prompt_tokens"], r["usage_source"])
                  for r in ledger_rows(gateway)) == [
        ("responses", INPUT_TOKENS, "reported"), ("responses_retrieve", 0, "none")]


async def test_the_sdk_counts_a_response_s_input_tokens_and_that_bills_nothing(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        counted = await sdk.responses.input_tokens.count(model="chat", input="hi")
    assert (counted.object, counted.input_tokens) == ("response.input_tokens", INPUT_TOKENS)
    assert fake.requests[-1].path == "/v1/responses/input_tokens"
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["route"], row["prompt_tokens"], row["usage_source"]) == (
        "responses_input_tokens", 0, "none")


async def test_a_compaction_goes_to_the_model_of_its_previous_response_and_is_billed(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        first = await sdk.responses.create(model="chat", input="remember 42")
        compacted = await sdk.responses.compact(
            model="chat", input="and now?", previous_response_id=first.id)
    assert compacted.object == "response.compaction"
    bound, made = unbind(compacted.id), unbind(first.id)  # the gateway's ids, as for any
    assert bound is not None and made is not None
    assert (bound.kind, bound.target) == ("model", made.target)
    said = [item.content[0].text for item in compacted.output if item.type == "message"]
    assert said == ["remember 42", "and now?"]  # the upstream had the first by its own id
    assert compacted.output[-1].type == "compaction"
    assert fake.requests[-1].body["model"] == fake.requests[-2].body["model"]
    await wait_for(lambda: len(ledger_rows(gateway)) == 2, timeout=10)
    rows = {r["route"]: r for r in ledger_rows(gateway)}
    assert (rows["responses_compact"]["prompt_tokens"], rows["responses_compact"]["usage_source"]
            ) == (2 * INPUT_TOKENS, "reported")


# Two models of one group on two upstreams, served by two workers.
PAIR_MODELS = [
    {"name": "left", "tier_score": 0.9, "specializations": [], "upstream_model": "m-left",
     "mode": "chat", "upstream": "one"},
    {"name": "right", "tier_score": 0.9, "specializations": [], "upstream_model": "m-right",
     "mode": "chat", "upstream": "two"},
]
PAIR_ROUTING = {"routing": {"strategy": "round-robin", "default_group": "pair",
                            "groups": {"pair": ["left", "right"]}}}


async def _pair(start_gateway: StartGateway, one: str, two: str) -> Gateway:
    upstreams = {"default": {"url": one}, "one": {"url": one}, "two": {"url": two}}
    return await start_gateway(models=PAIR_MODELS, routing=PAIR_ROUTING,
                               gateway={"upstreams": upstreams, "workers": 2})


@pytest.mark.workers
async def test_follow_ups_reach_the_model_that_made_them_across_two_upstreams_and_workers(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str],
):
    gateway = await _pair(start_gateway, upstream[1], second_upstream[1])
    async with _sdk(gateway) as sdk:
        firsts = await asyncio.gather(
            *(sdk.responses.create(model="pair", input=f"q{i}") for i in range(8)))
        made_by = {r.id: r.model for r in firsts}
        assert set(made_by.values()) == {"m-left", "m-right"}  # the router used both
        follow_ups = await asyncio.gather(*(
            sdk.responses.create(model="pair", input="more", previous_response_id=r.id)
            for r in firsts for _ in range(3)))
    # Each follow-up found its previous response: the other upstream would have said 404.
    assert [f.model for f in follow_ups] == [r.model for r in firsts for _ in range(3)]
    assert all(f.metadata == {"turns": "2"} for f in follow_ups)


@pytest.mark.workers
async def test_a_follow_up_after_a_reload_still_reaches_its_model(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str],
):
    gateway = await _pair(start_gateway, upstream[1], second_upstream[1])
    async with _sdk(gateway) as sdk:
        first = await sdk.responses.create(model="pair", input="hi")
        gateway.signal(signal.SIGHUP)
        await wait_for(lambda: "workers reloaded" in gateway.logs(), timeout=30)
        read = await sdk.responses.retrieve(first.id)
        follow = await sdk.responses.create(model="pair", input="and?",
                                            previous_response_id=first.id)
    assert read.model == follow.model == first.model


@pytest.mark.workers
async def test_a_follow_up_whose_model_is_gone_gets_a_404_that_says_so(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str],
):
    gateway = await _pair(start_gateway, upstream[1], second_upstream[1])
    async with _sdk(gateway) as sdk:
        first = await sdk.responses.create(model="pair", input="hi")
        gone = "left" if first.model == "m-left" else "right"
        kept = [m for m in PAIR_MODELS if m["name"] != gone]
        routing = {"routing": {**PAIR_ROUTING["routing"],
                               "groups": {"pair": [kept[0]["name"]]}}}
        upstreams = {"default": {"url": upstream[1]}, "one": {"url": upstream[1]},
                     "two": {"url": second_upstream[1]}}
        write_config(gateway.config_dir, upstream[1], models=kept, routing=routing,
                     gateway={"upstreams": upstreams, "workers": 2})
        gateway.signal(signal.SIGHUP)
        await wait_for(lambda: "workers reloaded" in gateway.logs(), timeout=30)
        with pytest.raises(openai.NotFoundError) as raised:
            await sdk.responses.create(model="pair", input="and?", previous_response_id=first.id)
    assert f"model '{gone}'" in raised.value.message
    assert "no longer serves" in raised.value.message



async def test_a_follow_up_nested_too_deeply_to_rewrite_gets_400_not_500(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with _sdk(gateway) as sdk:
        first = await sdk.responses.create(model="chat", input="hi")
    nested = "[" * 300 + "]" * 300  # orjson reads 1024 levels, writes 254
    body = (f'{{"model": "chat", "input": "hi", "previous_response_id": "{first.id}", '
            f'"metadata": {nested}}}')
    async with client.post(gateway.url + "/v1/responses", data=body,
                           headers={**gateway.auth, "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert "nested too deeply" in (await resp.json())["error"]["message"]


async def test_a_model_that_breaks_off_a_plain_response_counts_against_its_health(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"default_group": "chat", "strategy": "failover",
                           "groups": {"chat": ["alpha", "beta"]},
                           "circuit_breaker": {"failures": 2, "cooldown": 60}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-alpha", reset_after_chunks=0)
    body = {"model": "chat", "input": "hi"}
    for _ in range(2):
        async with client.post(gateway.url + "/v1/responses", json=body,
                               headers=gateway.auth) as resp:
            assert resp.status == 502
    # Read whole to rebind its ids, the broken answer had counted as a success.
    async with client.post(gateway.url + "/v1/responses", json=body,
                           headers=gateway.auth) as resp:
        assert resp.status == 200 and resp.headers["X-HX-Model"] == "beta"
    assert "upstream failed mid-response" in gateway.logs()


async def test_a_background_response_streamed_is_relayed_as_it_runs(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", background=True,
                                            stream=True)
        kinds = [event.type async for event in stream]
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert kinds[-1] == "response.completed"


def _billed_background(gateway: Gateway) -> list[dict]:
    return [r for r in ledger_rows(gateway) if r["request_id"].startswith("usage-of-")]


async def test_a_background_response_is_billed_once_when_a_retrieve_first_sees_it_finished(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway  # it counts the ledger's rows
    fake.behave("m-alpha", content="done at last")
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="long job", background=True)
        assert made.status == "queued"
        fake.responses.run_background()
        for _ in range(2):
            assert (await sdk.responses.retrieve(made.id)).status == "completed"
    await wait_for(lambda: len(ledger_rows(gateway)) == 4, timeout=10)
    rows = ledger_rows(gateway)
    made_row = next(r for r in rows if r["route"] == "responses" and r["status"] == 200
                    and not r["request_id"].startswith("usage-of-"))
    # What it made the request for was not known yet: nothing is billed on its row.
    assert (made_row["prompt_tokens"], made_row["completion_tokens"], made_row["usage_source"]
            ) == (0, 0, "none")
    (billed,) = _billed_background(gateway)
    assert billed["request_id"] == "usage-of-" + made.id
    assert (billed["model"], billed["prompt_tokens"], billed["completion_tokens"],
            billed["usage_source"]) == ("alpha", INPUT_TOKENS, 3, "reported")


async def test_a_background_response_billed_by_a_retrieve_is_billed_to_its_end_user(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway  # it counts the ledger's rows
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="long job", background=True,
                                          safety_identifier="u-background")
        fake.responses.run_background()
        assert (await sdk.responses.retrieve(made.id)).status == "completed"
    await wait_for(lambda: len(_billed_background(gateway)) == 1, timeout=10)
    (billed,) = _billed_background(gateway)
    assert billed["end_user"] == "u-background"


async def test_a_background_response_streamed_whole_is_billed_once_whatever_reads_it_later(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway
    fake.behave("m-alpha", content="one two")
    async with _sdk(gateway) as sdk:
        stream = await sdk.responses.create(model="chat", input="hi", background=True,
                                            stream=True)
        made = [event async for event in stream][-1].response
        assert (await sdk.responses.retrieve(made.id)).status == "completed"
    await wait_for(lambda: len(ledger_rows(gateway)) == 3, timeout=10)
    (billed,) = _billed_background(gateway)
    assert (billed["request_id"], billed["prompt_tokens"], billed["completion_tokens"]) == (
        "usage-of-" + made.id, INPUT_TOKENS, 2)
    assert sum(r["prompt_tokens"] for r in ledger_rows(gateway)) == INPUT_TOKENS


async def test_a_background_stream_its_client_cut_is_billed_what_it_relayed_until_it_is_read(
    own_gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = own_gateway
    fake.behave("m-alpha", content="a b c d e f", gate=asyncio.Event())
    body = {"model": "chat", "input": "hi", "background": True, "stream": True}
    async with client.post(gateway.url + "/v1/responses", json=body,
                           headers=gateway.auth) as resp:
        while b"response.output_text.delta" not in await resp.content.readline():
            pass  # it leaves after the first word, before the response is done
    await wait_for(lambda: len(ledger_rows(gateway)) == 2, timeout=10)
    (billed,) = _billed_background(gateway)
    assert (billed["usage_source"], billed["outcome"]) == ("estimated", "client_gone")
    assert billed["prompt_tokens"] > 0 and billed["completion_tokens"] > 0
    fake.responses.run_background()
    async with _sdk(gateway) as sdk:  # read again, finished: what it reported takes its place
        for _ in range(2):
            made = await sdk.responses.retrieve(billed["request_id"][len("usage-of-"):])
            assert made.status == "completed"
    await wait_for(lambda: len(ledger_rows(gateway)) == 4, timeout=10)
    await wait_for(lambda: _billed_background(gateway)[0]["usage_source"] == "reported")
    (reported,) = _billed_background(gateway)
    assert (reported["prompt_tokens"], reported["completion_tokens"]) == (INPUT_TOKENS, 6)


async def test_the_sdk_resumes_a_response_s_stream_after_the_events_it_had(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", content="one two three")
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="hi")
        # Events 0-3 open the response and its text; 4 is the first word's delta.
        again = await sdk.responses.retrieve(made.id, stream=True, starting_after=4)
        events = [event async for event in again]
    assert [event.sequence_number for event in events] == list(range(5, 5 + len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert deltas == [" two", " three"]
    assert events[-1].type == "response.completed"
    assert events[-1].response.id == made.id  # bound as the client knows it


async def test_a_resumed_stream_the_upstream_cuts_raises_in_the_sdk(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="chat", input="hi")
        fake.behave("m-alpha", end_after_chunks=1)
        again = await sdk.responses.retrieve(made.id, stream=True)
        with pytest.raises(openai.APIError, match="before its final event"):
            async for _ in again:
                pass


async def test_a_key_limited_to_groups_reaches_no_response_of_a_model_outside_them(
    start_gateway: StartGateway, fake: FakeUpstream, tmp_path: Path
):
    # A response's id names the model that made it: handed one of another group's, a key
    # had read it, and continued it there, past the groups it is held to.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, "groups": ["chat"]}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)}})
    async with _sdk(gateway) as sdk:
        made = await sdk.responses.create(model="solo", input="hi")  # gamma's, the master's
    asked = len(fake.requests)
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret,
                                  max_retries=0) as app:
        with pytest.raises(openai.PermissionDeniedError, match="may not use model 'gamma'"):
            await app.responses.retrieve(made.id)
        with pytest.raises(openai.PermissionDeniedError, match="may not use model 'gamma'"):
            await app.responses.create(model="chat", input="and?", previous_response_id=made.id)
    assert len(fake.requests) == asked  # neither reached an upstream


async def test_a_file_s_id_given_as_a_previous_response_is_one_the_gateway_did_not_make(
    gateway: Gateway, fake: FakeUpstream
):
    # Bound to an upstream, not a model: it had been read as made by a model named as
    # the upstream is, "which this gateway no longer serves".
    async with _sdk(gateway) as sdk:
        made = await sdk.files.create(file=("input.jsonl", b"{}\n"), purpose="batch")
        with pytest.raises(openai.NotFoundError, match="this gateway did not make it"):
            await sdk.responses.create(model="chat", input="and?", previous_response_id=made.id)
