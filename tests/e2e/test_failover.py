"""Failover to the next candidate, only while nothing has reached the client."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, free_port, ledger_rows, wait_for

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
STREAM = CHAT | {"stream": True}


TRIPS_AT_ONE = {"routing": {"default_group": "chat", "groups": {"chat": ["alpha", "beta"]},
                             "circuit_breaker": {"failures": 1, "cooldown": 60}}}
"""The chat group of alpha then beta, whose circuits open at a model's first failure."""


async def _chat(gateway: Gateway, client: aiohttp.ClientSession, body: dict = CHAT,
                **headers: str) -> tuple[int, dict, dict]:
    async with client.post(gateway.url + "/v1/chat/completions", json=body,
                           headers=gateway.auth | headers) as resp:
        payload = await resp.json(content_type=None) if not body.get("stream") else {}
        return resp.status, dict(resp.headers), payload


async def test_a_5xx_fails_over_to_the_next_model(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=503)
    status, headers, _ = await _chat(gateway, client)
    assert status == 200
    assert headers["X-HX-Model"] == "beta"
    assert headers["X-HX-Failovers"] == "1"
    assert fake.seen_models() == ["m-alpha", "m-beta"]


async def test_the_access_line_counts_each_move_to_another_candidate(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=503)
    status, _, _ = await _chat(gateway, client, **{"X-Request-ID": "fo-one"})
    assert status == 200
    fake.behave("m-beta", status=503)
    status, _, _ = await _chat(gateway, client, **{"X-Request-ID": "fo-all"})
    assert status == 502

    def access_lines() -> dict[str, str]:
        return {
            line.rsplit("request_id=", 1)[1].split()[0]: line
            for line in gateway.logs().splitlines()
            if " POST /v1/chat/completions status=" in line and "request_id=fo-" in line
        }

    await wait_for(lambda: "fo-all" in access_lines())
    lines = access_lines()
    assert " failovers=1 " in lines["fo-one"] and " outcome=ok " in lines["fo-one"]
    assert " failovers=1 " in lines["fo-all"]  # alpha, then beta: one move


async def test_a_lone_candidate_s_error_is_no_failover_and_is_filed_under_its_model(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-gamma", status=500)
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**CHAT, "model": "solo"}) as resp:
        assert resp.status == 500 and resp.headers["X-HX-Model"] == "gamma"
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["model"], row["failovers"], row["status"]) == ("gamma", 0, 500)


async def test_a_429_fails_over_to_the_next_model(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=429, retry_after="3")
    status, headers, _ = await _chat(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "beta")


async def test_a_408_fails_over_to_the_next_model(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The upstream timed out waiting on its side: another model may well answer.
    fake.behave("m-alpha", status=408)
    status, headers, _ = await _chat(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "beta")


@pytest.mark.parametrize("status", [429, 503])
async def test_a_model_that_asks_to_be_spared_with_retry_after_is_not_asked_again_meanwhile(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream, status: int
):
    # A 503's Retry-After says how long the service expects to be down (RFC 9110).
    fake.behave("m-alpha", status=status, retry_after="30")
    assert (await _chat(gateway, client))[1]["X-HX-Model"] == "beta"
    fake.behave("m-alpha")  # well again, but it asked for 30 s
    assert (await _chat(gateway, client))[1]["X-HX-Model"] == "beta"
    assert fake.seen_models().count("m-alpha") == 1


async def test_a_reset_before_headers_fails_over(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", reset_before_headers=True)
    status, headers, _ = await _chat(gateway, client, STREAM)
    assert (status, headers["X-HX-Model"]) == (200, "beta")


async def test_slow_headers_past_the_first_byte_timeout_fail_over(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"timeouts": {"first_byte": 0.5}})
    fake.behave("m-alpha", header_delay=30)
    status, headers, _ = await _chat(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "beta")
    await wait_for(lambda: fake.cancelled == ["m-alpha"])


async def test_a_plain_answer_waits_for_its_own_timeout_not_a_stream_s_first_byte(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # A plain answer's first byte is its last: a reasoning model may take minutes, and cut
    # at the first-byte timeout it would be sent to the next model and billed twice.
    gateway = await start_gateway(gateway={"timeouts": {"first_byte": 0.5, "answer": 5}})
    fake.behave("m-alpha", header_delay=1.5)
    status, headers, _ = await _chat(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "alpha")
    status, headers, _ = await _chat(gateway, client, STREAM)
    assert (status, headers["X-HX-Model"]) == (200, "beta")


async def test_an_unreachable_upstream_fails_over_to_a_model_on_another_upstream(
    start_gateway: StartGateway, client: aiohttp.ClientSession, upstream: tuple[FakeUpstream, str],
    dead_port: int,
):
    models = [
        {"name": "alpha", "tier_score": 0.9, "specializations": [], "upstream_model": "m-alpha",
         "upstream": "dead"},
        {"name": "beta", "tier_score": 0.9, "specializations": [], "upstream_model": "m-beta"},
    ]
    routing = {"routing": {"default_group": "chat", "groups": {"chat": ["alpha", "beta"]}}}
    dead = f"http://127.0.0.1:{dead_port}"
    gateway = await start_gateway(
        models=models, routing=routing,
        gateway={"upstreams": {"default": {"url": upstream[1]}, "dead": {"url": dead}}})
    status, headers, _ = await _chat(gateway, client)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    await wait_for(lambda: "error=connect_error" in gateway.logs())


async def test_the_other_models_of_an_upstream_that_takes_no_connection_are_passed_over(
    start_gateway: StartGateway, client: aiohttp.ClientSession, upstream: tuple[FakeUpstream, str],
    dead_port: int,
):
    # Each had cost a connect timeout of its own, request after request, until each
    # model's circuit opened apart.
    gateway = await _alpha_and_gamma_behind_a_dead_upstream(start_gateway, upstream, dead_port)
    status, headers, _ = await _chat(gateway, client)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    await wait_for(lambda: "error=connect_error" in gateway.logs())
    assert "model=gamma" not in gateway.logs()


async def test_a_failover_past_a_model_passed_over_is_counted_from_the_model_tried(
    start_gateway: StartGateway, client: aiohttp.ClientSession, upstream: tuple[FakeUpstream, str],
    dead_port: int,
):
    # It had been counted from gamma, never tried, and alpha, which failed, was nowhere.
    gateway = await _alpha_and_gamma_behind_a_dead_upstream(start_gateway, upstream, dead_port)
    assert (await _chat(gateway, client))[0] == 200
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        counted = [line for line in (await resp.text()).splitlines()
                   if line.startswith("hxgw_failovers_total{")]
    assert counted == ['hxgw_failovers_total{from_model="alpha",group="chat",to_model="beta"} 1.0']


async def _alpha_and_gamma_behind_a_dead_upstream(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str], dead_port: int
) -> Gateway:
    """Group chat: alpha and gamma behind an upstream that takes no connection, then beta."""
    models = [
        {"name": name, "tier_score": 0.9, "specializations": [], "upstream_model": f"m-{name}",
         "upstream": "dead"} for name in ("alpha", "gamma")
    ] + [{"name": "beta", "tier_score": 0.9, "specializations": [], "upstream_model": "m-beta"}]
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "groups": {"chat": ["alpha", "gamma", "beta"]}}}
    return await start_gateway(
        models=models, routing=routing, gateway={"upstreams": {
            "default": {"url": upstream[1]}, "dead": {"url": f"http://127.0.0.1:{dead_port}"}}})


async def test_failover_order_models_are_tried_after_the_group(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"default_group": "solo", "failover_order": ["beta"],
                           "groups": {"solo": ["gamma"], "emb": ["embed"]}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-gamma", status=500)
    status, headers, _ = await _chat(gateway, client)
    assert (status, headers["X-HX-Model"]) == (200, "beta")


async def test_failover_never_crosses_to_a_model_of_another_mode(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"default_group": "emb", "failover_order": ["alpha"],
                           "groups": {"emb": ["embed"]}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-embed", status=500)
    async with client.post(gateway.url + "/v1/embeddings", json={"input": "x"},
                           headers=gateway.auth) as resp:
        assert resp.status == 500  # the only candidate's own answer
    assert fake.seen_models() == ["m-embed"]


async def test_when_every_candidate_fails_the_error_lists_what_was_tried(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=500, error_message="model crashed")
    fake.behave("m-beta", reset_before_headers=True)
    status, _, body = await _chat(gateway, client)
    assert status == 502
    error = body["error"]
    assert error["type"] == "upstream_error"
    assert error["tried"] == [
        {"model": "alpha", "status": 500, "error": "model crashed"},
        {"model": "beta", "error": "reset"},
    ]


async def test_litellm_refusing_the_gateway_key_is_a_gateway_error_not_the_clients(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, status=400, error_message="No connected db.",
                    error_type="no_db_connection")
    status, _, body = await _chat(gateway, client)
    assert status == 502
    assert "set HX_UPSTREAM_KEY" in body["error"]["tried"][0]["error"]
    assert fake.seen_models() == ["m-alpha", "m-beta"]


async def test_an_upstream_refusing_the_gateway_key_is_a_502_naming_it_not_the_clients_401(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The client's key never goes upstream: passed on, a 401 would tell its SDK that its
    # own key is wrong.
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, status=401, error_message="Invalid proxy server token passed.")
    answer, headers, body = await _chat(gateway, client)
    # A retry cannot help: the SDKs, which retry a 5xx, are told not to.
    assert (answer, headers["x-should-retry"]) == (502, "false")
    assert body["error"]["code"] == "gateway_key_refused"
    assert body["error"]["message"] == (
        "the upstream refused the gateway's own key (HTTP 401: Invalid proxy server "
        "token passed.): check the upstream's key (its key_env, HX_UPSTREAM_KEY by default)"
    )
    assert fake.seen_models() == ["m-alpha", "m-beta"]


async def test_the_gateways_own_upstream_key_quoted_in_an_answer_reaches_no_one_whole(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    secret = "sk-upstream-secret-value-7x9q"
    gateway = await start_gateway(upstream_key=secret)
    fake.behave("m-alpha", status=401, error_message=f"Incorrect API key provided: {secret}.")
    fake.behave("m-beta", status=429, error_message=f"Rate limit reached for key {secret}")
    status, _, body = await _chat(gateway, client)
    assert status == 502
    said = json.dumps(body)
    assert secret not in said and "...7x9q" in said
    gateway.stop()
    assert secret not in gateway.logs()


async def test_an_upstream_s_403_reaches_the_client_as_it_came(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # OpenRouter says with a 403 that the input was flagged: the client's, not the key's.
    gateway = await start_gateway()
    fake.behave("m-gamma", status=403, error_message="Input was flagged by moderation.")
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"model": "solo", "messages": [{"role": "user", "content": "x"}]}
                           ) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["message"] == "Input was flagged by moderation."


async def test_a_403_from_every_model_of_a_group_reaches_the_client_and_opens_no_circuit(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, status=403, error_message="Input was flagged by moderation.")
    for _ in range(6):  # more than the circuit breaker's failures
        status, _, body = await _chat(gateway, client)
        assert (status, body["error"]["message"]) == (403, "Input was flagged by moderation.")
    fake.requests.clear()
    fake.behave("m-alpha", status=200)
    assert (await _chat(gateway, client))[0] == 200
    assert fake.seen_models() == ["m-alpha"]  # not taken out for the client's prompts


async def test_a_client_s_400_that_repeats_no_db_connection_is_its_own_and_fails_no_model(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    said = "Invalid value: 'no_db_connection'. Supported values are: 'system', 'user'."
    fake.behave("m-alpha", status=400, error_message=said)
    body = {"messages": [{"role": "no_db_connection", "content": "hi"}]}
    for _ in range(6):
        status, _, answer = await _chat(gateway, client, body)
        assert (status, answer["error"]["message"]) == (400, said)
    assert fake.seen_models() == ["m-alpha"] * 6  # never failed over: no model was at fault


async def test_a_retry_after_of_thousands_of_digits_is_passed_on_not_a_500(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing={"routing": {"strategy": "failover",
                                                       "default_group": "solo",
                                                       "groups": {"solo": ["alpha"]}}})
    fake.behave("m-alpha", status=429, retry_after="9" * 5000)
    for _ in range(4):  # past the slots a leak would keep
        status, _, answer = await _chat(gateway, client)
        assert status == 429 and answer["error"]["type"] != "internal_error"
    assert "Traceback" not in gateway.logs()


async def test_when_every_candidate_is_rate_limited_the_client_gets_429_with_retry_after(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=429, retry_after="7")
    fake.behave("m-beta", status=429, retry_after="3")
    status, headers, _ = await _chat(gateway, client)
    assert status == 429
    assert headers["Retry-After"] == "3"


async def test_when_every_candidate_is_unavailable_for_a_while_the_client_gets_503_with_the_wait(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway()
    fake.behave("m-alpha", status=503, retry_after="7")
    fake.behave("m-beta", status=503, retry_after="3")
    status, headers, body = await _chat(gateway, client)
    assert (status, headers["Retry-After"]) == (503, "3")
    assert body["error"]["code"] == "upstream_unavailable"
    assert [t["model"] for t in body["error"]["tried"]] == ["alpha", "beta"]


async def test_no_failover_once_the_stream_has_started(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="a b c", reset_after_chunks=1)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        text = (await asyncio.wait_for(resp.read(), 10)).decode()
    assert "event: error" in text
    assert fake.seen_models() == ["m-alpha"]


async def test_the_gateway_starts_with_the_upstream_down_and_recovers_when_it_returns(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    from aiohttp.test_utils import TestServer

    port = free_port()
    gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{port}")
    status, _, body = await _chat(gateway, client)
    assert status == 502
    # Why, in the message an SDK's exception shows: not only in `tried`.
    assert "tried alpha (connect_error), beta (connect_error)" in body["error"]["message"]
    server = TestServer(fake.make_app(), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        status, headers, _ = await _chat(gateway, client)
        assert (status, headers["X-HX-Model"]) == (200, "alpha")
    finally:
        await server.close()


async def test_candidates_left_when_the_total_timeout_runs_out_are_neither_tried_nor_blamed(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"default_group": "solo", "failover_order": ["beta", "gamma"],
                           "groups": {"solo": ["alpha"]}}}
    gateway = await start_gateway(
        routing=routing, gateway={"timeouts": {"connect": 2, "first_byte": 5, "total": 1}})
    fake.behave("m-alpha", header_delay=3)
    status, _, body = await _chat(gateway, client)
    assert status == 504
    assert [t["model"] for t in body["error"]["tried"]] == ["alpha"]
    assert fake.seen_models() == ["m-alpha"]
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        metrics = await resp.text()
    # Before, each got a first-byte deadline of 0, timed out at once and counted against it.
    assert 'hxgw_upstream_errors_total{kind="timeout",model="beta"} 0.0' in metrics
    assert 'hxgw_upstream_errors_total{kind="timeout",model="gamma"} 0.0' in metrics


async def test_a_fallback_whose_wait_the_total_timeout_cut_short_is_not_blamed(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # alpha spends its first-byte second; beta is left 0.4 s, under half of its own.
    timeouts = {"connect": 2, "first_byte": 1, "answer": 1, "total": 1.4}
    gateway = await start_gateway(routing=TRIPS_AT_ONE, gateway={"timeouts": timeouts})
    fake.behave("m-alpha", header_delay=3)
    fake.behave("m-beta", header_delay=0.9)  # in its first-byte time, not in what is left
    status, _, body = await _chat(gateway, client)
    assert status == 504
    assert [t["model"] for t in body["error"]["tried"]] == ["alpha", "beta"]
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        metrics = await resp.text()
    assert 'hxgw_upstream_errors_total{kind="timeout",model="alpha"} 1.0' in metrics
    assert 'hxgw_upstream_errors_total{kind="timeout",model="beta"} 0.0' in metrics
    assert 'hxgw_circuit_state{model="beta"} 0.0' in metrics


async def test_a_groups_last_model_standing_fails_with_the_gateways_error_not_its_own(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Pass-through is a pinned model's or a one-model group's; here the others' circuits
    # are open, and the client of a group still hears what was tried.
    gateway = await start_gateway(routing=TRIPS_AT_ONE)
    fake.behave("m-alpha", status=503)
    fake.behave("m-beta", status=503)
    status, _, _ = await _chat(gateway, client)
    assert status == 502  # both tried, both circuits open now
    status, headers, body = await _chat(gateway, client)
    assert status == 502
    assert [t["model"] for t in body["error"]["tried"]] == ["alpha"]
    assert "X-HX-Model" not in headers


async def test_a_half_open_model_takes_one_probe_not_every_request_that_fails_over_to_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"default_group": "chat", "strategy": "failover",
                           "groups": {"chat": ["alpha", "beta", "gamma"]},
                           "circuit_breaker": {"failures": 1, "cooldown": 0.5}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-beta", status=503)
    fake.behave("m-alpha", status=503)
    assert (await _chat(gateway, client))[0] == 200  # alpha and beta open; gamma serves
    await asyncio.sleep(0.6)  # both half-open now
    fake.requests.clear()
    fake.behave("m-alpha", status=503, header_delay=0.5)
    fake.behave("m-beta", header_delay=0.5)
    results = await asyncio.gather(*(_chat(gateway, client) for _ in range(6)))
    assert {status for status, _, _ in results} == {200}
    # One probe each; the other requests went on to gamma rather than pile onto them.
    assert fake.seen_models().count("m-alpha") == 1
    assert fake.seen_models().count("m-beta") <= 1


async def test_a_429_that_asks_for_a_wait_only_in_retry_after_ms_spares_its_model(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=429, retry_after_ms="5000")
    status, headers, _ = await _chat(gateway, client)
    assert status == 200 and headers["X-HX-Model"] == "beta"
    fake.requests.clear()
    status, headers, _ = await _chat(gateway, client)
    assert status == 200 and fake.seen_models() == ["m-beta"]  # alpha left alone 5 s


async def test_the_gateways_own_error_after_failing_over_says_where_the_request_went(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=503)
    fake.behave("m-beta", status=500)
    status, headers, _ = await _chat(gateway, client)
    assert status == 502
    assert headers["X-HX-Group"] == "chat" and headers["X-HX-Failovers"] == "1"
    assert "chosen=alpha" in headers["X-HX-Route"]
