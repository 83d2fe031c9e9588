"""Answers that begin as no answer, failed over while nothing has reached the client:
a stream that opens with an error event or with nothing but comments, and an upstream
that has no such model. And what is held against a model's health, and what is not."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, wait_for

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
STREAM = CHAT | {"stream": True}
SOLO = {"routing": {"strategy": "failover", "default_group": "solo",
                    "groups": {"solo": ["alpha"]},
                    "circuit_breaker": {"failures": 2, "cooldown": 60}}}
ERROR_EVENT = b'data: {"error": {"message": "provider overloaded", "type": "None", ' \
              b'"param": "None", "code": "503"}}\n\n'
"""How LiteLLM's proxy reports a provider's failure once it has answered 200."""


async def _post(gateway: Gateway, client: aiohttp.ClientSession,
                body: dict = STREAM) -> tuple[int, dict, bytes]:
    async with client.post(gateway.url + "/v1/chat/completions", json=body,
                           headers=gateway.auth) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def _metrics(gateway: Gateway, client: aiohttp.ClientSession) -> str:
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        return await resp.text()


def _circuit(metrics: str, model: str) -> float:
    found = re.search(rf'^hxgw_circuit_state{{model="{model}"}} (\S+)$', metrics, re.M)
    assert found, metrics
    return float(found[1])


async def test_a_stream_that_opens_with_an_error_event_fails_over(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", script=((0.0, ERROR_EVENT),))
    status, headers, body = await _post(gateway, client)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    assert body.endswith(b"data: [DONE]\n\n") and b"provider overloaded" not in body


async def test_an_error_chunk_that_names_its_id_and_choices_first_fails_over_too(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # OpenRouter's shape: the OpenAI SDK raises on any chunk with a top-level `error`.
    chunk = (b'data: {"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,'
             b'"delta":{},"finish_reason":"error"}],"error":{"code":502,'
             b'"message":"provider overloaded"}}\n\n')
    fake.behave("m-alpha", script=((0.0, b": OPENROUTER PROCESSING\n\n"), (0.0, chunk)))
    status, headers, body = await _post(gateway, client)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    assert b"provider overloaded" not in body


async def test_a_responses_stream_that_fails_right_after_it_is_created_fails_over(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    failed = (b'event: response.created\ndata: {"type":"response.created","response":'
              b'{"id":"resp_1","status":"in_progress"}}\n\n'
              b'event: response.failed\ndata: {"type":"response.failed","response":{"id":'
              b'"resp_1","status":"failed","error":{"code":"server_error",'
              b'"message":"provider overloaded"}}}\n\n')
    fake.behave("m-alpha", script=((0.0, failed),))
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "chat", "input": "hi", "stream": True}) as resp:
        assert (resp.status, resp.headers["X-HX-Model"]) == (200, "beta")
        assert b"provider overloaded" not in await resp.read()


async def test_a_200_whose_body_is_an_error_and_no_answer_fails_over(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The SDKs would take it for an answer without choices.
    fake.behave("m-alpha", script=((0.0, b'{"error": {"message": "provider overloaded"}}'),))
    status, headers, body = await _post(gateway, client, {**STREAM, "stream": False})
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    assert json.loads(body)["choices"]


async def test_every_stream_opening_with_an_error_event_is_a_502_saying_what_each_said(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, script=((0.0, ERROR_EVENT),))
    status, _, body = await _post(gateway, client)
    tried = json.loads(body)["error"]["tried"]
    assert status == 502 and [t["model"] for t in tried] == ["alpha", "beta"]
    assert all("provider overloaded" in t["error"] for t in tried)


async def test_a_lone_candidate_s_stream_of_an_error_event_is_relayed_and_held_against_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=SOLO)
    fake.behave("m-alpha", script=((0.0, ERROR_EVENT),))
    for _ in range(2):
        status, _, body = await _post(gateway, client)
        assert (status, body) == (200, ERROR_EVENT)
    assert _circuit(await _metrics(gateway, client), "alpha") == 1
    await wait_for(lambda: gateway.logs().count(" outcome=upstream_unavailable ") == 2)


async def test_a_responses_stream_that_ends_failed_after_its_text_is_held_against_its_model(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # It had been an `ok` in the access line and the ledger, and a success of the model's.
    text = (b'event: response.created\ndata: {"type":"response.created","response":'
            b'{"id":"resp_1","status":"in_progress"}}\n\n'
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"delta":"Hello"}\n\n')
    failed = (b'event: response.failed\ndata: {"type":"response.failed","response":{"id":'
              b'"resp_1","status":"failed","error":{"code":"server_error",'
              b'"message":"provider died"}}}\n\n')
    gateway = await start_gateway(routing=SOLO)
    fake.behave("m-alpha", script=((0.0, text), (0.05, failed)))
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "stream": True}) as resp:
        assert (resp.status, await resp.read()) == (200, text + failed)  # as it came
    stream_errors = 'hxgw_upstream_errors_total{kind="stream_error",model="alpha"} 1.0'
    assert stream_errors in await _metrics(gateway, client)
    await wait_for(lambda: " outcome=upstream_unavailable " in gateway.logs())


async def test_comments_before_the_first_event_are_no_answer_and_fail_over(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # OpenRouter's keep-alive while a request waits in its queue, then the connection dies.
    fake.behave("m-alpha", script=((0.0, b": OPENROUTER PROCESSING\n\n"),), script_end="reset")
    status, headers, body = await _post(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "beta")
    assert body.endswith(b"data: [DONE]\n\n") and b"event: error" not in body


async def test_comments_before_the_first_event_reach_the_client_with_it(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    chunk = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    fake.behave("m-alpha", script=((0.0, b": waiting\n\n"), (0.2, chunk + b"data: [DONE]\n\n")))
    status, headers, body = await _post(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "alpha")
    assert body == b": waiting\n\n" + chunk + b"data: [DONE]\n\n"


KEEP_ALIVE = b": OPENROUTER PROCESSING\n\n"
KEPT_ALIVE = ((0.0, KEEP_ALIVE), (1.0, KEEP_ALIVE), (1.0, KEEP_ALIVE), (1.0, KEEP_ALIVE),
              (0.5, b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
                    b"data: [DONE]\n\n"))
"""A queue that keeps the connection alive for 3.5 s, past a first-byte timeout of 3."""


async def test_the_last_candidate_s_keep_alives_are_relayed_as_an_answer_not_a_timeout(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"timeouts": {"first_byte": 3}})
    fake.behave("m-alpha", status=500)
    fake.behave("m-beta", script=KEPT_ALIVE)
    status, headers, body = await _post(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "beta")
    assert body.startswith(b": OPENROUTER PROCESSING\n\n") and body.endswith(b"[DONE]\n\n")


async def test_keep_alives_past_half_the_first_byte_wait_are_taken_as_an_answer(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # A long queue, or a reasoning model slow to start, is not a timed-out model.
    gateway = await start_gateway(gateway={"timeouts": {"first_byte": 3}})
    fake.behave("m-alpha", script=KEPT_ALIVE)
    status, headers, body = await _post(gateway, client)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "alpha", "0")
    assert body.endswith(b"[DONE]\n\n")


async def test_a_lone_candidate_s_comments_reach_the_client_at_once(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # With no other candidate there is nothing to wait for: keep-alives are relayed.
    fake.behave("m-alpha", script=((0.0, b": waiting\n\n"), (5.0, b"data: [DONE]\n\n")))
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**STREAM, "model": "alpha"}) as resp:
        assert await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 2) == b": waiting\n\n"


async def test_a_model_the_upstream_does_not_have_fails_over_to_the_next(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=404, error_code="model_not_found",
                error_message="The model `m-alpha` does not exist or you do not have access to it.")
    status, headers, _ = await _post(gateway, client, CHAT)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    assert _circuit(await _metrics(gateway, client), "alpha") == 0  # one failure of two


async def test_anthropic_s_missing_model_as_litellm_wraps_it_fails_over_to_the_next(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=404, error_code="404", error_message=(
        'litellm.NotFoundError: AnthropicException - {"type":"error","error":{"type":'
        '"not_found_error","message":"model: claude-3-opus-20240229"}}'))
    status, headers, _ = await _post(gateway, client, CHAT)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")


async def test_a_404_that_is_not_about_the_model_reaches_the_client_as_it_came(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=404, error_code="not_found", error_message="No such thing.")
    status, headers, body = await _post(gateway, client, CHAT)
    assert (status, headers["X-HX-Model"]) == (404, "alpha")
    assert json.loads(body)["error"]["message"] == "No such thing."


TOO_LONG = ("This model's maximum context length is 8192 tokens. However, your messages "
            "resulted in 9000 tokens. Please reduce the length of the messages.")


async def test_a_prompt_too_long_for_a_model_goes_to_the_next_and_fails_no_model(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta"]},
                           "circuit_breaker": {"failures": 1, "cooldown": 60}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-alpha", status=400, error_code="context_length_exceeded",
                error_message=TOO_LONG)
    status, headers, _ = await _post(gateway, client, CHAT)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    assert _circuit(await _metrics(gateway, client), "alpha") == 0  # the prompt's fault


async def test_a_prompt_too_long_for_every_model_gets_the_upstream_s_400_as_it_came(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, status=400, error_code="context_length_exceeded",
                    error_message=TOO_LONG)
    status, _, body = await _post(gateway, client, CHAT)
    error = json.loads(body)["error"]
    assert (status, error["code"], error["message"]) == (400, "context_length_exceeded", TOO_LONG)


async def test_a_chat_asking_more_choices_than_openai_makes_gets_its_400_naming_n(
    gateway: Gateway, client: aiohttp.ClientSession
):
    status, _, body = await _post(gateway, client, CHAT | {"n": 129})
    error = json.loads(body)["error"]
    assert (status, error["param"], error["code"]) == (400, "n", "integer_above_max_value")


async def test_a_stream_cut_by_the_total_timeout_is_not_held_against_its_model(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # A healthy model's long answer meets the gateway's own limit: no circuit opens.
    gateway = await start_gateway(routing=SOLO, gateway={"timeouts": {"total": 1}})
    fake.behave("m-alpha", content="a b c d", chunk_delay=0.4)
    for _ in range(2):
        status, _, body = await _post(gateway, client)
        assert status == 200 and b"total timeout" in body
    assert _circuit(await _metrics(gateway, client), "alpha") == 0


async def test_a_stream_cut_by_the_total_timeout_is_no_upstream_error_in_metrics_or_log(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The runbook's alert on upstream errors had fired for a healthy model's long answer.
    gateway = await start_gateway(routing=SOLO, gateway={"timeouts": {"total": 1}})
    fake.behave("m-alpha", content="a b c d", chunk_delay=0.4)
    status, _, body = await _post(gateway, client)
    assert status == 200 and b"total timeout" in body
    metrics = await _metrics(gateway, client)
    cuts = re.findall(r'^hxgw_upstream_errors_total{kind="stream_\w+",model="alpha"} (\S+)$',
                      metrics, re.M)
    assert cuts and set(cuts) == {"0.0"}
    assert "upstream failed mid-response" not in gateway.logs()


PAIR = {"routing": {"strategy": "failover", "default_group": "chat",
                    "groups": {"chat": ["alpha", "beta"]},
                    "circuit_breaker": {"failures": 1, "cooldown": 60}}}


def _litellm_500(fake: FakeUpstream, model: str, said: str = "Invalid tool choice") -> None:
    """A 500 as real LiteLLM answers a malformed request: its message names the model."""
    fake.behave(model, status=500, error_type="internal_server_error", error_code="500",
                error_message=f"litellm.APIConnectionError: OpenAIException - {said}. "
                              f"Received Model Group={model}\n"
                              "Available Model Group Fallbacks=None")


async def test_a_500_every_candidate_gives_alike_is_the_request_s_and_opens_no_circuit(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=PAIR)
    for model in ("m-alpha", "m-beta"):
        _litellm_500(fake, model)
    status, _, body = await _post(gateway, client, CHAT)
    assert status == 502 and len(json.loads(body)["error"]["tried"]) == 2
    metrics = await _metrics(gateway, client)
    assert (_circuit(metrics, "alpha"), _circuit(metrics, "beta")) == (0, 0)
    fake.behaviours.clear()
    status, headers, _ = await _post(gateway, client, CHAT)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "alpha", "0")


async def test_a_500_of_a_request_another_candidate_served_counts_against_its_model(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=PAIR)
    _litellm_500(fake, "m-alpha")
    status, headers, _ = await _post(gateway, client, CHAT)
    assert (status, headers["X-HX-Model"]) == (200, "beta")
    assert _circuit(await _metrics(gateway, client), "alpha") == 1


async def test_500s_that_say_different_things_count_against_each_model(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=PAIR)
    _litellm_500(fake, "m-alpha", said="Connection pool exhausted")
    _litellm_500(fake, "m-beta", said="Out of memory")
    status, _, _ = await _post(gateway, client, CHAT)
    assert status == 502
    metrics = await _metrics(gateway, client)
    assert (_circuit(metrics, "alpha"), _circuit(metrics, "beta")) == (1, 1)
