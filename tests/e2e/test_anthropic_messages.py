"""Anthropic's Messages API through the gateway, driven by the official anthropic SDK:
plain and streamed, token counting, its key header, group routing with failover,
errors in Anthropic's shape, and the usage it reports in metrics and the ledger."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest
from multidict import CIMultiDict

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, ledger_rows, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
HI = [{"role": "user", "content": "hi"}]


def _sdk(gateway: Gateway, key: str | None = None) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=key or gateway.key,
                                    max_retries=0)


async def test_a_message_is_answered_through_the_gateway_with_its_model_rewritten(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        reply = await sdk.messages.create(model="chat", max_tokens=64, messages=HI,
                                          extra_headers={"anthropic-beta": "fake-beta-1"})
    assert reply.content[0].text == "Hello there from the fake upstream"  # type: ignore[union-attr]
    assert reply.usage.input_tokens == 11 and reply.stop_reason == "end_turn"
    seen = fake.requests[-1]
    assert (seen.path, seen.model) == ("/v1/messages", "m-alpha")
    # Passed on as the SDK sent them: the API version it speaks, and the betas asked for.
    assert seen.headers["anthropic-version"].count("-") == 2
    assert seen.headers["anthropic-beta"] == "fake-beta-1"


async def test_a_message_stream_goes_upstream_as_the_client_sent_it_without_stream_options(
    gateway: Gateway, fake: FakeUpstream
):
    # stream_options is OpenAI's: Anthropic refuses a field it does not know, with a 400.
    async with _sdk(gateway) as sdk:
        stream = await sdk.messages.create(model="chat", max_tokens=64, messages=HI, stream=True)
        async for _ in stream:
            pass
    assert "stream_options" not in fake.requests[-1].body


async def test_every_model_overloaded_gets_the_last_529_as_it_came_with_the_shortest_wait(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway  # a Retry-After opens the model's circuit for that long
    # Anthropic's SDK reads a 529 as OverloadedError and backs off by its Retry-After.
    fake.behave("m-alpha", status=529, retry_after="7")
    fake.behave("m-beta", status=529, retry_after="3")
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.APIStatusError) as raised:
            await sdk.messages.create(model="chat", max_tokens=8, messages=HI)
    assert raised.value.status_code == 529
    assert raised.value.response.headers["retry-after"] == "3"
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


MESSAGE_START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
                 b'"type":"message","role":"assistant","model":"m-alpha","content":[],'
                 b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,'
                 b'"output_tokens":1}}}\n\n')
OVERLOADED = (b'event: error\ndata: {"type":"error","error":{"details":null,'
              b'"type":"overloaded_error","message":"Overloaded"}}\n\n')


async def test_a_stream_overloaded_right_after_message_start_fails_over(
    gateway: Gateway, fake: FakeUpstream
):
    # Anthropic may start the message and then find itself overloaded: nothing of the
    # answer has reached the client, so the group's next model serves it.
    fake.behave("m-alpha", script=((0.0, MESSAGE_START), (0.2, OVERLOADED)))
    async with _sdk(gateway) as sdk, sdk.messages.with_streaming_response.create(
        model="chat", max_tokens=64, messages=HI, stream=True
    ) as response:
        text = "".join([line async for line in response.iter_lines()])
    assert response.headers["X-HX-Model"] == "beta" and response.headers["X-HX-Failovers"] == "1"
    assert "overloaded_error" not in text and "message_stop" in text


async def test_a_stream_overloaded_after_its_first_empty_block_began_fails_over(
    gateway: Gateway, fake: FakeUpstream
):
    # As Anthropic's API orders it: the text block starts empty, a ping, then the error.
    start = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
             b'"content_block":{"type":"text","text":""}}\n\n'
             b'event: ping\ndata: {"type": "ping"}\n\n')
    fake.behave("m-alpha", script=((0.0, MESSAGE_START + start), (0.2, OVERLOADED)))
    async with _sdk(gateway) as sdk, sdk.messages.stream(
        model="chat", max_tokens=64, messages=HI
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == "Hello there from the fake upstream"  # type: ignore[union-attr]
    assert fake.seen_models() == ["m-alpha", "m-beta"]


@pytest.mark.parametrize("script", [
    ((0.0, MESSAGE_START + OVERLOADED),),
    ((0.0, MESSAGE_START), (0.2, OVERLOADED)),  # the last candidate's preamble read past too
], ids=["one-read", "message-start-first"])
async def test_every_model_overloaded_in_its_stream_is_an_overloaded_error_not_a_502(
    own_gateway: Gateway, fake: FakeUpstream, script: tuple[tuple[float, bytes], ...]
):
    gateway = own_gateway  # a Retry-After opens the model's circuit for that long
    # An SDK catching OverloadedError to back off had met an InternalServerError here,
    # and an overloaded HTTP 529 of one model and an overloaded stream of the other a 502.
    fake.behave("m-alpha", status=529, retry_after="7")
    fake.behave("m-beta", script=script)
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.OverloadedError) as raised:
            await sdk.messages.create(model="chat", max_tokens=64, messages=HI, stream=True)
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert "every candidate model is overloaded: alpha, beta" in raised.value.message


async def test_one_model_overloaded_and_one_rate_limited_is_a_rate_limit_with_its_wait(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway  # a Retry-After opens the model's circuit for that long
    # Each busy its own way had been a 502 with no wait: the SDK lost its RateLimitError.
    fake.behave("m-alpha", script=((0.0, MESSAGE_START + OVERLOADED),))
    fake.behave("m-beta", status=429, retry_after="5")
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.RateLimitError) as raised:
            await sdk.messages.create(model="chat", max_tokens=64, messages=HI, stream=True)
    assert raised.value.response.headers["retry-after"] == "5"


async def test_one_model_overloaded_and_one_unavailable_for_a_while_is_a_503_with_its_wait(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway
    fake.behave("m-alpha", status=529)
    fake.behave("m-beta", status=503, retry_after="4")
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.InternalServerError) as raised:
            await sdk.messages.create(model="chat", max_tokens=64, messages=HI)
    assert raised.value.status_code == 503
    assert raised.value.response.headers["retry-after"] == "4"


async def test_every_model_answering_200_with_anthropic_s_overloaded_error_is_overloaded(
    gateway: Gateway, fake: FakeUpstream
):
    said = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, script=((0.0, said),))
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.OverloadedError):
            await sdk.messages.create(model="chat", max_tokens=64, messages=HI)


async def test_a_stream_litellm_breaks_with_a_nameless_error_line_raises_in_the_sdk(
    gateway: Gateway, fake: FakeUpstream
):
    # LiteLLM ends a broken /v1/messages stream with `data: {"error": ...}` and no event
    # name, which Anthropic's SDK skips: the gateway's own error event must follow it, or
    # the client takes the cut message for a whole one.
    delta = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
             b'"content_block":{"type":"text","text":""}}\n\n'
             b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":"Hel"}}\n\n')
    fake.behave("m-alpha", script=((0.0, MESSAGE_START), (0.05, delta),
                                   (0.05, b'data: {"error": {"message": "boom"}}\n\n')))
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.APIError):
            async with sdk.messages.stream(model="alpha", max_tokens=64, messages=HI) as stream:
                await stream.get_final_message()


async def test_anthropic_s_rate_limit_headers_reach_the_client_but_its_organization_not(
    gateway: Gateway, fake: FakeUpstream, client: aiohttp.ClientSession
):
    message = (b'{"id":"msg_1","type":"message","role":"assistant","model":"m-alpha",'
               b'"content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",'
               b'"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":1}}')
    fake.behave("m-alpha", script=((0.0, message),), headers={
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-tokens-reset": "2026-12-06T00:00:30Z",
        "anthropic-organization-id": "org-upstream"})
    async with client.post(gateway.url + "/v1/messages", headers={"x-api-key": gateway.key},
                           json={"model": "chat", "max_tokens": 8, "messages": HI}) as resp:
        assert resp.status == 200
        assert resp.headers["anthropic-ratelimit-requests-remaining"] == "49"
        assert resp.headers["anthropic-ratelimit-tokens-reset"] == "2026-12-06T00:00:30Z"
        assert "anthropic-organization-id" not in resp.headers


async def test_betas_given_on_several_header_lines_all_reach_the_upstream(
    gateway: Gateway, fake: FakeUpstream, client: aiohttp.ClientSession
):
    headers = CIMultiDict([("x-api-key", gateway.key), ("anthropic-version", "2023-06-01"),
                           ("anthropic-beta", "prompt-caching-2024-07-31"),
                           ("anthropic-beta", "interleaved-thinking-2025-05-14")])
    async with client.post(gateway.url + "/v1/messages", headers=headers,
                           json={"model": "chat", "max_tokens": 8, "messages": HI}) as resp:
        assert resp.status == 200
    assert [v for k, v in fake.requests[-1].header_list if k.lower() == "anthropic-beta"] == [
        "prompt-caching-2024-07-31, interleaved-thinking-2025-05-14"]


async def test_a_streamed_message_arrives_event_by_event(gateway: Gateway):
    async with _sdk(gateway) as sdk, sdk.messages.stream(
        model="chat", max_tokens=64, messages=HI
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello there from the fake upstream"
    assert final.usage.output_tokens == 6 and final.stop_reason == "end_turn"


async def test_tokens_are_counted_through_the_gateway(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        counted = await sdk.messages.count_tokens(model="chat", messages=HI)
    assert counted.input_tokens >= 11


async def test_counting_a_prompt_too_long_for_every_model_counts_it(
    start_gateway: StartGateway,
):
    # A client counts to learn whether a prompt fits: the count is the answer, not a 400.
    small = [{**model, "max_context": 1000} for model in DEFAULT_MODELS]
    gateway = await start_gateway(models=small)
    long = [{"role": "user", "content": "word " * 2000}]
    async with _sdk(gateway) as sdk:
        counted = await sdk.messages.count_tokens(model="chat", messages=long)
        with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
            await sdk.messages.create(model="chat", max_tokens=8, messages=long)
    assert counted.input_tokens >= 11


async def test_counting_tokens_with_every_model_rate_limited_gets_the_shortest_wait(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway  # a Retry-After opens the model's circuit for that long
    fake.behave("m-alpha", status=429, retry_after="7")
    fake.behave("m-beta", status=429, retry_after="3")
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.RateLimitError) as raised:
            await sdk.messages.count_tokens(model="chat", messages=HI)
    assert raised.value.response.headers["retry-after"] == "3"
    assert raised.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_the_key_may_come_as_x_api_key_and_a_wrong_one_is_an_authentication_error(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.post(gateway.url + "/v1/messages",
                           json={"model": "chat", "max_tokens": 8, "messages": HI},
                           headers={"x-api-key": gateway.key}) as resp:
        assert resp.status == 200
    async with _sdk(gateway, key="sk-wrong") as sdk:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            await sdk.messages.create(model="chat", max_tokens=8, messages=HI)
    assert raised.value.body == {"type": "error", "error": {
        "type": "authentication_error", "message": "invalid API key"},
        "request_id": raised.value.request_id}


async def test_with_both_headers_the_bearer_key_is_read_and_a_wrong_one_says_so(
    gateway: Gateway, client: aiohttp.ClientSession
):
    body = {"model": "chat", "max_tokens": 8, "messages": HI}
    right, wrong = gateway.key, "sk-ant-not-for-the-gateway"
    async with client.post(gateway.url + "/v1/messages", json=body, headers={
            "Authorization": f"Bearer {right}", "x-api-key": wrong}) as resp:
        assert resp.status == 200
    async with client.post(gateway.url + "/v1/messages", json=body, headers={
            "Authorization": f"Bearer {wrong}", "x-api-key": right}) as resp:
        assert resp.status == 401
        message = (await resp.json())["error"]["message"]
    assert "with both headers given, x-api-key is not read" in message


async def test_a_base_url_given_with_v1_is_told_to_leave_it_out(gateway: Gateway):
    # The SDK adds /v1 itself: a base URL that ends with it asks for /v1/v1/messages.
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url + "/v1", api_key=gateway.key,
                                   max_retries=0)
    async with sdk:
        with pytest.raises(anthropic.NotFoundError) as raised:
            await sdk.messages.create(model="chat", max_tokens=8, messages=HI)
    assert "leave it out of its base URL" in raised.value.body["error"]["message"]  # type: ignore[index]


async def test_a_missing_key_is_told_of_x_api_key_in_anthropic_shape(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.post(gateway.url + "/v1/messages", json={"model": "chat"}) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert "x-api-key" in body["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/messages", "/messages", "/v1/messages/count_tokens"])
async def test_a_wrong_method_on_a_messages_path_is_a_405_in_anthropic_shape(
    gateway: Gateway, client: aiohttp.ClientSession, path: str
):
    async with client.get(gateway.url + path, headers={"x-api-key": gateway.key}) as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "POST"
        body = await resp.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}


async def test_an_anthropic_route_the_gateway_lacks_is_a_not_found_error_with_its_request_id(
    gateway: Gateway,
):
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.NotFoundError) as raised:
            await sdk.messages.batches.list()
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert raised.value.request_id


async def test_a_path_no_route_takes_called_by_the_anthropic_sdk_is_its_not_found_error(
    gateway: Gateway, client: aiohttp.ClientSession
):
    # Its SDK's legacy completions (older SDKs): had been OpenAI's shape, no request-id.
    headers = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01"}
    async with client.post(gateway.url + "/v1/complete", headers=headers,
                           json={"model": "chat", "prompt": "\n\nHuman: hi\n\nAssistant:",
                                 "max_tokens_to_sample": 8}) as resp:
        body = await resp.json()
        assert resp.status == 404 and resp.headers["request-id"]
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"


async def test_an_unknown_group_is_a_not_found_error_in_anthropic_shape(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.NotFoundError) as raised:
            await sdk.messages.create(model="no-such-group", max_tokens=8, messages=HI)
    assert isinstance(raised.value.body, dict) and raised.value.body["type"] == "error"


async def test_an_overloaded_model_fails_over_to_the_next_in_its_group(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=529)
    async with _sdk(gateway) as sdk:
        raw = await sdk.messages.with_raw_response.create(model="chat", max_tokens=8,
                                                          messages=HI)
    assert raw.headers["X-HX-Model"] == "beta"
    assert fake.seen_models() == ["m-alpha", "m-beta"]


async def test_a_model_anthropic_no_longer_has_fails_over_to_the_next_in_its_group(
    gateway: Gateway, fake: FakeUpstream
):
    # Anthropic's 404 for a retired model: one such in the registry had made its whole
    # group answer 404.
    fake.behave("m-alpha", status=404, error_message="model: m-alpha")
    async with _sdk(gateway) as sdk:
        raw = await sdk.messages.with_raw_response.create(model="chat", max_tokens=8,
                                                          messages=HI)
    assert (raw.headers["X-HX-Model"], raw.headers["X-HX-Failovers"]) == ("beta", "1")


async def test_a_404_that_is_not_about_the_model_reaches_the_anthropic_client_as_it_came(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=404, error_message="file_011: not found")
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.NotFoundError) as raised:
            await sdk.messages.create(model="chat", max_tokens=8, messages=HI)
    assert raised.value.response.headers["X-HX-Model"] == "alpha"


async def test_a_prompt_and_max_tokens_past_a_model_s_context_fail_over_to_the_next(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=400, error_message=(
        "input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000, "
        "decrease input length or `max_tokens` and try again"))
    async with _sdk(gateway) as sdk:
        raw = await sdk.messages.with_raw_response.create(model="chat", max_tokens=8,
                                                          messages=HI)
    assert raw.headers["X-HX-Model"] == "beta"


async def test_a_stream_that_breaks_ends_with_an_anthropic_error_event(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", reset_after_chunks=2)
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.APIStatusError) as raised:
            async with sdk.messages.stream(model="chat", max_tokens=64, messages=HI) as stream:
                async for _ in stream.text_stream:
                    pass
    assert "upstream" in str(raised.value)


async def test_a_stream_that_ends_before_message_stop_raises_in_the_sdk(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", end_after_chunks=2)
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.APIStatusError, match="before its final event"):
            async with sdk.messages.stream(model="chat", max_tokens=64, messages=HI) as stream:
                await stream.get_final_message()


async def test_its_reported_usage_is_in_the_metrics_and_the_ledger(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    async with _sdk(gateway) as sdk, sdk.messages.stream(
        model="chat", max_tokens=64, messages=HI
    ) as stream:
        await stream.get_final_message()
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        metrics = await resp.text()
    assert 'hxgw_tokens_total{kind="prompt",model="alpha"} 11.0' in metrics
    assert 'hxgw_tokens_total{kind="completion",model="alpha"} 6.0' in metrics
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    assert [(r["route"], r["prompt_tokens"], r["completion_tokens"], r["usage_source"])
            for r in ledger_rows(gateway)] == [("messages", 11, 6, "reported")]


def _litellm_ordered(text: str) -> bytes:
    """A message as LiteLLM's /v1/messages builds one from another provider's answer: its
    usage before its content, where a tool's input names token counts of its own."""
    tool = {"type": "tool_use", "id": "toolu_1", "name": "estimate_cost",
            "input": {"input_tokens": 800000, "output_tokens": 900000,
                      "usage": {"input_tokens": 700000, "output_tokens": 600000}}}
    return json.dumps({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m-alpha",
        "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 34},
        "content": [{"type": "text", "text": text}, tool], "stop_reason": "tool_use",
    }).encode()


@pytest.mark.parametrize("text_bytes", [10, 100_000], ids=["short", "longer-than-kept"])
async def test_token_counts_in_a_tool_s_input_are_not_taken_for_the_usage(
    own_gateway: Gateway, fake: FakeUpstream, text_bytes: int
):
    fake.behave("m-alpha", script=((0.0, _litellm_ordered("x" * text_bytes)),))
    async with _sdk(own_gateway) as sdk:
        reply = await sdk.messages.create(model="alpha", max_tokens=64, messages=HI)
    assert reply.usage.input_tokens == 12
    await wait_for(lambda: len(ledger_rows(own_gateway)) == 1, timeout=10)
    assert [(r["prompt_tokens"], r["completion_tokens"], r["usage_source"])
            for r in ledger_rows(own_gateway)] == [(12, 34, "reported")]


async def test_every_answer_carries_the_request_id_the_anthropic_sdk_reads(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        raw = await sdk.messages.with_raw_response.create(model="chat", max_tokens=8,
                                                          messages=HI)
        with pytest.raises(anthropic.NotFoundError) as raised:
            await sdk.messages.create(model="no-such-group", max_tokens=8, messages=HI)
    assert raw.request_id == raw.headers["X-Request-ID"]
    assert raised.value.request_id == raised.value.response.headers["X-Request-ID"]
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["request_id"] == raised.value.request_id


@pytest.mark.parametrize(("status", "error", "kind"), [
    (400, anthropic.BadRequestError, "invalid_request_error"),  # relayed as it streams in
    (500, anthropic.InternalServerError, "api_error"),  # a lone model's: the gateway answers
], ids=["relayed-400", "lone-models-500"])
async def test_an_upstream_error_in_openai_shape_reaches_the_client_in_anthropic_shape(
    gateway: Gateway, fake: FakeUpstream, status: int, error: type[anthropic.APIStatusError],
    kind: str,
):
    fake.behave("m-gamma", status=status, openai_shaped=True, error_message="max_tokens: too big")
    async with _sdk(gateway) as sdk:
        with pytest.raises(error) as raised:
            await sdk.messages.create(model="solo", max_tokens=8, messages=HI)
    assert raised.value.body == {"type": "error", "request_id": raised.value.request_id,
                                 "error": {"type": kind, "message": "max_tokens: too big"}}
    assert raised.value.response.headers["Content-Type"] == "application/json"


async def test_an_upstream_error_in_anthropic_shape_passes_as_it_came(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-gamma", status=400, error_message="messages: roles must alternate")
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.BadRequestError) as raised:
            await sdk.messages.create(model="solo", max_tokens=8, messages=HI)
    assert raised.value.body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages: roles must alternate"},
        "request_id": "req_fake"}


async def test_the_anthropic_sdk_lists_and_retrieves_models_in_its_own_shape(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        listed = [model async for model in sdk.models.list()]
        one = await sdk.models.retrieve("chat")
    chat = next(m for m in listed if m.id == "chat")
    assert (chat.type, chat.display_name) == ("model", "chat")
    assert chat.created_at.tzinfo is not None
    assert (one.id, one.type, one.display_name) == ("chat", "model", "chat")


async def test_the_models_answers_to_the_anthropic_sdk_carry_the_request_id_it_reads(
    gateway: Gateway,
):
    async with _sdk(gateway) as sdk:
        listed = await sdk.models.with_raw_response.list()
        one = await sdk.models.with_raw_response.retrieve("chat")
    for raw in (listed, one):
        assert raw.request_id == raw.headers["X-Request-ID"]


async def test_the_anthropic_sdk_s_unknown_model_is_a_404_in_its_own_shape(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await sdk.models.retrieve("nope")
    body = missing.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert missing.value.request_id == body["request_id"]


async def test_the_models_routes_take_the_key_as_x_api_key_as_the_anthropic_sdk_sends_it(
    gateway: Gateway, client: aiohttp.ClientSession
):
    key = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01"}
    async with client.get(gateway.url + "/v1/models", headers=key) as resp:
        assert resp.status == 200
        assert "chat" in [m["id"] for m in (await resp.json())["data"]]
    async with client.get(gateway.url + "/v1/models/chat", headers=key) as resp:
        assert resp.status == 200
    async with client.get(gateway.url + "/v1/models", headers={"x-api-key": "sk-wrong"}) as resp:
        assert resp.status == 401


async def test_a_wrong_method_or_path_under_the_models_routes_is_refused_in_anthropic_shape(
    gateway: Gateway, client: aiohttp.ClientSession
):
    key = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01"}
    for method, path, status in (("DELETE", "/v1/models/chat", 405), ("POST", "/v1/models", 405),
                                 ("GET", "/v1/models/", 404)):
        async with client.request(method, gateway.url + path, headers=key) as resp:
            assert resp.status == status
            body = await resp.json()
        assert body["type"] == "error" and body["request_id"] == resp.headers["request-id"]


async def test_the_models_routes_ask_an_anthropic_client_without_a_key_for_x_api_key(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/v1/models",
                          headers={"anthropic-version": "2023-06-01"}) as resp:
        assert resp.status == 401
        assert "x-api-key" in (await resp.json())["error"]["message"]


async def test_the_anthropic_sdk_pages_the_models_list_by_limit_after_id_and_before_id(
    gateway: Gateway,
):
    async with _sdk(gateway) as sdk:
        everything = [model.id async for model in sdk.models.list()]
        first = await sdk.models.list(limit=2)
        paged = [model.id async for model in sdk.models.list(limit=2)]
        second = await sdk.models.list(limit=2, after_id=everything[1])
        before = await sdk.models.list(limit=2, before_id=everything[3])
        # Exactly a page before it: nothing more that way, or the SDK reads an empty page.
        first_page_back = await sdk.models.list(limit=2, before_id=everything[2])
    assert len(everything) == 7  # the fixture's four models and three groups
    assert [m.id for m in first.data] == everything[:2]
    assert (first.has_more, first.first_id, first.last_id) == (True, *everything[:2])
    assert paged == everything
    assert [m.id for m in second.data] == everything[2:4]
    assert [m.id for m in before.data] == everything[1:3] and before.has_more
    assert [m.id for m in first_page_back.data] == everything[:2]
    assert not first_page_back.has_more


async def test_a_models_page_past_anthropic_s_limits_or_after_an_unknown_id_is_a_400(
    gateway: Gateway,
):
    async with _sdk(gateway) as sdk:
        for query in ({"limit": 0}, {"limit": 1001}, {"after_id": "nope"}):
            with pytest.raises(anthropic.BadRequestError) as raised:
                await sdk.models.list(**query)  # type: ignore[arg-type]
            assert raised.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def test_anthropic_s_files_api_is_told_it_is_not_served_in_anthropic_s_shape(
    gateway: Gateway,
):
    # It has OpenAI's paths: answered as OpenAI's, the SDK listed no files, and an upload
    # was told it missed OpenAI's parameters.
    async with _sdk(gateway) as sdk:
        with pytest.raises(anthropic.NotFoundError) as listing:
            await sdk.beta.files.list()
        with pytest.raises(anthropic.NotFoundError) as upload:
            await sdk.beta.files.upload(file=("notes.txt", b"hello", "text/plain"))
    for refused in (listing.value, upload.value):
        assert refused.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        assert "Anthropic's Files API is not served here" in refused.message
