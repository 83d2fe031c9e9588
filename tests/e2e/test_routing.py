"""Routing through the real process: explanations, open circuits, recovery."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, HXGW, Gateway, new_key, wait_for, write_config

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
BREAKER = {"routing": {"strategy": "failover", "default_group": "chat",
                       "circuit_breaker": {"failures": 2, "cooldown": 1},
                       "groups": {"chat": ["alpha", "beta"], "emb": ["embed"]}}}


async def _served_by(gateway, client: aiohttp.ClientSession, body: dict = CHAT) -> str:
    async with client.post(gateway.url + "/v1/chat/completions", json=body,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
        await resp.read()  # a client that leaves before the body says nothing of the model
        return resp.headers["X-HX-Model"]


async def _break_alpha(gateway, client: aiohttp.ClientSession, fake: FakeUpstream) -> list[str]:
    """Alpha fails as often as BREAKER allows, which opens its circuit; who served instead."""
    fake.behave("m-alpha", status=503)
    return [await _served_by(gateway, client) for _ in range(2)]


async def test_every_routed_response_explains_its_route(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    routing = {"routing": {"strategy": "ml-based-routing", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta"], "emb": ["embed"]}}}
    gateway = await start_gateway(routing=routing)
    body = {"messages": [{"role": "user", "content":
                          "Write a Python function that parses a CSV file and returns rows"}]}
    async with client.post(gateway.url + "/v1/chat/completions", json=body,
                           headers=gateway.auth) as resp:
        route = resp.headers["X-HX-Route"]
    assert route.startswith("strategy=ml-based-routing; task=coding; p=")
    assert "chosen=alpha; runner_up=beta" in route  # alpha specializes in coding


async def test_a_model_left_out_for_its_open_circuit_is_named_in_the_route_header(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Only alpha's own log lines had said why a request no longer went to it.
    gateway = await start_gateway(routing=BREAKER)
    await _break_alpha(gateway, client, fake)
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        route = resp.headers["X-HX-Route"]
    assert route.endswith("chosen=beta; skipped=alpha")


async def test_an_open_circuit_is_skipped_until_its_cooldown_ends(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=BREAKER)
    assert await _break_alpha(gateway, client, fake) == ["beta", "beta"]
    fake.requests.clear()
    assert await _served_by(gateway, client) == "beta"
    assert fake.seen_models() == ["m-beta"]  # alpha's circuit is open: not even tried


async def test_the_half_open_probe_closes_the_circuit_when_the_model_recovers(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=BREAKER)
    await _break_alpha(gateway, client, fake)
    fake.behaviours.clear()
    await asyncio.sleep(1.1)
    assert await _served_by(gateway, client) == "alpha"  # the probe
    assert [await _served_by(gateway, client) for _ in range(3)] == ["alpha"] * 3


async def test_a_circuit_opening_and_closing_is_one_log_line_each(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=BREAKER)
    await _break_alpha(gateway, client, fake)
    await wait_for(lambda: "circuit opened" in gateway.logs())
    fake.behaviours.clear()
    await asyncio.sleep(1.1)
    assert await _served_by(gateway, client) == "alpha"  # the probe
    await wait_for(lambda: "circuit closed" in gateway.logs())
    opened = [line for line in gateway.logs().splitlines() if "circuit opened" in line]
    assert len(opened) == 1 and "warning" in opened[0] and "model=alpha" in opened[0]
    assert 'why="2 failures in a row"' in opened[0]


async def test_a_failed_probe_keeps_the_circuit_open(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(routing=BREAKER)
    await _break_alpha(gateway, client, fake)
    await asyncio.sleep(1.1)
    fake.requests.clear()
    assert await _served_by(gateway, client) == "beta"
    assert fake.seen_models() == ["m-alpha", "m-beta"]
    fake.requests.clear()
    assert await _served_by(gateway, client) == "beta"
    assert fake.seen_models() == ["m-beta"]


async def test_health_survives_a_reload_for_models_that_remain(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    import signal

    # A cooldown no slow machine outlasts: alpha's circuit is still open after the reload
    # only if the reload kept it.
    breaker = {**BREAKER["routing"], "circuit_breaker": {"failures": 2, "cooldown": 60}}
    gateway = await start_gateway(routing={"routing": breaker})
    await _break_alpha(gateway, client, fake)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs(), timeout=10)
    fake.requests.clear()
    assert await _served_by(gateway, client) == "beta"
    assert fake.seen_models() == ["m-beta"]


def _hxgw_route(config: Path, body: str, *options: str) -> subprocess.CompletedProcess[str]:
    """`hxgw route` on `body`, as an operator runs it (no upstream is called)."""
    return subprocess.run(
        [HXGW, "route", "--config-dir", str(config), *options],
        input=body, capture_output=True, text=True, timeout=30,
        env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"})


def test_hxgw_route_explains_the_order_without_calling_any_upstream(tmp_path: Path):
    routing = {"routing": {"strategy": "ml-based-routing", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta"], "emb": ["embed"]}}}
    config = write_config(tmp_path, "http://127.0.0.1:9", models=DEFAULT_MODELS, routing=routing)
    body = {"messages": [{"role": "user", "content": "Fix this bug: TypeError in my JS code"}]}
    result = _hxgw_route(config, json.dumps(body), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["group"] == "chat"
    assert max(report["task"], key=report["task"].get) == "coding"
    assert abs(sum(report["task"].values()) - 1.0) < 1e-3  # rounded to 4 places
    assert [c["model"] for c in report["candidates"]] == ["alpha", "beta"]
    assert report["candidates"][0]["score"] > report["candidates"][1]["score"]
    assert any("fits task" in reason for reason in report["candidates"][0]["reasons"])


def test_hxgw_route_names_what_in_the_prompt_made_the_task(tmp_path: Path):
    config = write_config(tmp_path, "http://127.0.0.1:9")
    body = {"messages": [{"role": "user", "content": "Translate this sentence into French"}]}
    result = _hxgw_route(config, json.dumps(body), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert max(report["task"], key=report["task"].get) == "translation"
    signals = report["task_signals"]
    assert 0 < len(signals) <= 5
    assert any("translat" in s["feature"].lower() for s in signals)
    assert [s["weight"] for s in signals] == sorted((s["weight"] for s in signals), reverse=True)


def test_hxgw_route_without_a_body_says_to_pipe_one_in(tmp_path: Path):
    # It said "not valid JSON: Input is a zero-length, empty document".
    config = write_config(tmp_path, "http://127.0.0.1:9")
    result = _hxgw_route(config, "")
    assert result.returncode == 1
    assert "no request body on standard input: pipe one in" in result.stderr, result.stderr
    assert "| hxgw route" in result.stderr


def test_hxgw_route_names_an_edge_word_feature_for_what_it_is(tmp_path: Path):
    # It was "starts with 'typeerror'" for a prompt starting "Fix this TypeError".
    config = write_config(tmp_path, "http://127.0.0.1:9")
    body = {"messages": [{"role": "user", "content": "Fix this TypeError in my JS"}]}
    result = _hxgw_route(config, json.dumps(body), "--json")
    assert result.returncode == 0, result.stderr
    features = [s["feature"] for s in json.loads(result.stdout)["task_signals"]]
    assert "word 'typeerror' among the first 4" in features, features
    assert not any(f.startswith(("starts with", "ends with")) for f in features), features


def test_hxgw_route_says_a_pinned_model_has_no_group(tmp_path: Path):
    config = write_config(tmp_path, "http://127.0.0.1:9")
    body = {"model": "gamma", "messages": [{"role": "user", "content": "hi"}]}
    result = _hxgw_route(config, json.dumps(body))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "group      - (a pinned model)"


def test_hxgw_route_prints_the_order_and_the_route_header_for_a_reader(tmp_path: Path):
    routing = {"routing": {"strategy": "ml-based-routing", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta"], "emb": ["embed"]}}}
    config = write_config(tmp_path, "http://127.0.0.1:9", models=DEFAULT_MODELS, routing=routing)
    body = {"messages": [{"role": "user", "content": "Fix this bug: TypeError in my JS code"}]}
    result = _hxgw_route(config, json.dumps(body))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["group      chat", "strategy   ml-based-routing"]
    assert lines[2].startswith("task       coding ")
    tried = lines[lines.index("tried in this order:") + 1:-1]
    assert [line.split()[:2] for line in tried] == [["1.", "alpha"], ["2.", "beta"]]
    assert lines[-1].startswith("X-HX-Route: strategy=ml-based-routing; task=coding;")


def test_hxgw_route_does_not_classify_an_embedding_s_input_as_serve_does_not(tmp_path: Path):
    routing = {"routing": {"strategy": "ml-based-routing", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta"], "emb": ["embed"]}}}
    config = write_config(tmp_path, "http://127.0.0.1:9", models=DEFAULT_MODELS, routing=routing)
    body = {"model": "emb", "input": "write a python function"}
    result = _hxgw_route(config, json.dumps(body), "--endpoint", "embeddings")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2:4] == ["task       - (an embedding's input is not classified)",
                          "signals    -"]
    report = json.loads(_hxgw_route(config, json.dumps(body), "--endpoint", "embeddings",
                                    "--json").stdout)
    assert report["task"] == {} and report["task_signals"] == []


def test_hxgw_route_says_a_task_its_strategy_did_not_use_is_only_the_classifier_s_view(
    tmp_path: Path,
):
    config = write_config(tmp_path, "http://127.0.0.1:9")  # failover
    body = {"messages": [{"role": "user", "content": "write a python function"}]}
    result = _hxgw_route(config, json.dumps(body))
    assert result.returncode == 0, result.stderr
    task_line = result.stdout.splitlines()[2]
    assert task_line.startswith("task       coding ")
    assert task_line.endswith("(the classifier's view: failover does not ask it)")


def test_hxgw_route_reads_an_anthropic_messages_body(tmp_path: Path):
    config = write_config(tmp_path, "http://127.0.0.1:9")
    body = {"model": "solo", "system": [{"type": "text", "text": "You translate."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    result = _hxgw_route(config, json.dumps(body), "--endpoint", "messages", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["group"] == "solo"


def test_hxgw_route_refuses_a_model_that_is_not_a_string_as_serve_does(tmp_path: Path):
    config = write_config(tmp_path, "http://127.0.0.1:9")
    result = _hxgw_route(config, json.dumps({"model": 5, "messages": []}))
    assert result.returncode == 1
    assert result.stderr == "hxgw route: 'model' must be a string, got a number\n"


def test_hxgw_route_rejects_a_body_that_is_not_json(tmp_path: Path):
    config = write_config(tmp_path, "http://127.0.0.1:9")
    result = _hxgw_route(config, "{nope")
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr


async def test_a_request_begun_before_a_reload_removed_an_upstream_still_fails_over_to_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    upstream: tuple[FakeUpstream, str], second_upstream: tuple[FakeUpstream, str],
):
    import signal

    left = {"name": "left", "tier_score": 0.9, "specializations": [], "upstream_model": "m-left",
            "mode": "chat", "upstream": "one"}
    right = {**left, "name": "right", "upstream_model": "m-right", "upstream": "two"}
    timeouts = {"connect": 2, "first_byte": 1, "idle": 5, "total": 30}

    def config(models: list[dict[str, object]]) -> dict[str, object]:
        names = [str(m["name"]) for m in models]
        upstreams = {"one": {"url": upstream[1]}, "two": {"url": second_upstream[1]}}
        return {"models": models, "gateway": {
            "timeouts": timeouts, "upstreams": {u: upstreams[u] for u in
                                                sorted({str(m["upstream"]) for m in models})}},
            "routing": {"routing": {"strategy": "failover", "default_group": "g",
                                    "groups": {"g": names}}}}

    gateway = await start_gateway(**config([left, right]))
    upstream[0].behave("m-left", header_delay=3)  # past first_byte: it will fail over
    request = asyncio.ensure_future(client.post(
        gateway.url + "/v1/chat/completions", headers=gateway.auth,
        json={"model": "g", "messages": [{"role": "user", "content": "hi"}]}))
    await wait_for(lambda: upstream[0].seen_models() == ["m-left"])
    write_config(gateway.config_dir, upstream[1], **config([left]))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    async with await request as resp:
        # It finishes on the config it began on (once a 500, then a 502 that skipped it).
        assert (resp.status, resp.headers["X-HX-Model"]) == (200, "right")
    assert second_upstream[0].seen_models() == ["m-right"]
    assert "unexpected error" not in gateway.logs()


async def test_when_every_model_asked_to_be_spared_a_request_tries_only_one(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, status=429, retry_after="30")
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        async with client.post(gateway.url + "/v1/chat/completions", json=chat,
                               headers=gateway.auth) as resp:
            assert resp.status == 429
    # The first tried both and heard "30 s" from each; the next two, one each, not two.
    assert len(fake.seen_models()) == 4


async def test_a_burst_under_latency_routing_spreads_over_models_not_yet_measured(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The whole burst went to alpha: no model had a time yet, and alpha was first.
    routing = {"routing": {"strategy": "latency", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta", "gamma"], "emb": ["embed"]}}}
    gateway = await start_gateway(routing=routing)
    for model in ("m-alpha", "m-beta", "m-gamma"):
        fake.behave(model, header_delay=1)  # the burst overlaps: none is measured meanwhile
    served = await asyncio.gather(*[_served_by(gateway, client) for _ in range(3)])
    assert sorted(served) == ["alpha", "beta", "gamma"]


async def test_round_robin_in_a_group_of_two_modes_takes_chat_turns_apart_from_embeddings(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # Chat alternating with embeddings always started on alpha: one turn for both modes.
    routing = {"routing": {"strategy": "round-robin", "default_group": "mixed",
                           "groups": {"mixed": ["alpha", "embed", "beta"]}}}
    gateway = await start_gateway(routing=routing)
    served = []
    for _ in range(4):
        served.append(await _served_by(gateway, client))
        async with client.post(gateway.url + "/v1/embeddings", json={"input": "x"},
                               headers=gateway.auth) as resp:
            assert (resp.status, resp.headers["X-HX-Model"]) == (200, "embed")
    assert served == ["alpha", "beta", "alpha", "beta"]


async def test_hxgw_route_sends_a_follow_up_to_the_model_of_its_previous_response_as_serve_does(
    gateway: Gateway, client: aiohttp.ClientSession
):
    # `hxgw route` showed the group's order (alpha first) for a follow-up that serve
    # sends to the model that made the previous response.
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "beta", "input": "hi"}) as resp:
        previous = (await resp.json())["id"]
    body = {"model": "chat", "input": "and then?", "previous_response_id": previous}
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json=body) as resp:
        assert resp.status == 200
        served, header = resp.headers["X-HX-Model"], resp.headers.get("X-HX-Route")
    result = _hxgw_route(gateway.config_dir, json.dumps(body), "--endpoint", "responses",
                         "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert served == "beta"
    assert [c["model"] for c in report["candidates"]] == [served]
    assert report["header"] == header


def test_hxgw_route_refuses_a_previous_response_this_gateway_did_not_make_as_serve_does(
    tmp_path: Path,
):
    config = write_config(tmp_path, "http://127.0.0.1:9")
    body = {"model": "chat", "input": "hi", "previous_response_id": "resp_abc"}
    result = _hxgw_route(config, json.dumps(body), "--endpoint", "responses")
    assert result.returncode == 1
    assert "Response with id 'resp_abc' not found" in result.stderr, result.stderr


async def test_a_plain_answer_s_wait_is_no_time_to_a_first_byte_but_a_stream_s_is(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # A plain answer's first byte is its last: one long answer had sent the streams of
    # `latency` and ml-based-routing to a model many times slower.
    gateway = await start_gateway(routing={"routing": {"strategy": "latency",
                                                       "default_group": "chat",
                                                       "groups": {"chat": ["alpha"]}}})
    fake.behave("m-alpha", header_delay=0.3)

    async def ttfb() -> float | None:
        async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
            models = (await resp.json())["models"]
        return next(m["ewma_ttfb_ms"] for m in models if m["name"] == "alpha")

    assert (await _chat_status(gateway, client, CHAT), await ttfb()) == (200, None)
    streamed = {**CHAT, "stream": True}
    assert (await _chat_status(gateway, client, streamed), await ttfb() is not None) == (200, True)


async def test_latency_ranks_models_that_only_write_plain_answers_by_how_long_those_take(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Plain answers are no time to a first byte: without a wait of their own to rank by,
    # every model had stayed unmeasured, and `latency` had spread plain traffic blindly.
    gateway = await start_gateway(routing={"routing": {"strategy": "latency",
                                                       "default_group": "chat",
                                                       "groups": {"chat": ["alpha", "beta"]}}})
    fake.behave("m-alpha", header_delay=0.3)
    first = {await _served_by(gateway, client), await _served_by(gateway, client)}
    assert first == {"alpha", "beta"}  # each measured once
    assert [await _served_by(gateway, client) for _ in range(5)] == ["beta"] * 5
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        alpha = next(m for m in (await resp.json())["models"] if m["name"] == "alpha")
    assert alpha["ewma_ttfb_ms"] is None and alpha["ewma_plain_ms"] >= 300


async def _chat_status(gateway: Gateway, client: aiohttp.ClientSession, body: dict) -> int:
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json=body) as resp:
        await resp.read()
        return resp.status
