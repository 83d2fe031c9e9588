"""Metrics, readiness and status, scraped from the real process before and after events."""

from __future__ import annotations

import asyncio
import base64
import datetime
import os
import re
import signal
import subprocess
import time

import aiohttp
import pytest
import yaml
from multidict import CIMultiDict

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import HXGW, Gateway, new_key, stream_under_way, wait_for

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def _scrape(gateway: Gateway, client: aiohttp.ClientSession) -> str:
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await resp.text()


def _value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` (labels matched as a subset); 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _chat(gateway: Gateway, client: aiohttp.ClientSession, body: dict = CHAT) -> int:
    async with client.post(gateway.url + "/v1/chat/completions", json=body,
                           headers=gateway.auth) as resp:
        await resp.read()
        return resp.status


async def test_metrics_refuse_a_scrape_without_a_key(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.get(gateway.url + "/metrics") as resp:
        assert resp.status == 401
    async with client.get(gateway.url + "/metrics",
                          headers={"Authorization": f"Bearer {new_key()}"}) as resp:
        assert resp.status == 401


async def test_a_metrics_key_opens_metrics_and_nothing_else(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    metrics_key = new_key("sk-metrics")
    gateway = await start_gateway(gateway={"metrics": {"key_env": "HX_METRICS_KEY"}},
                                  env={"HX_METRICS_KEY": metrics_key})
    headers = {"Authorization": f"Bearer {metrics_key}"}
    async with client.get(gateway.url + "/metrics", headers=headers) as resp:
        assert resp.status == 200
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=headers) as resp:
        assert resp.status == 401


async def test_metrics_can_be_opened_for_a_private_listener(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"metrics": {"auth": False}})
    async with client.get(gateway.url + "/metrics") as resp:
        assert resp.status == 200


async def test_request_counts_durations_and_ttfb_move_with_requests(
    gateway: Gateway, client: aiohttp.ClientSession
):
    before = await _scrape(gateway, client)
    assert await _chat(gateway, client) == 200
    after = await _scrape(gateway, client)
    labels = {"endpoint": "chat", "group": "chat", "model": "alpha", "status": "200"}
    assert _value(after, "hxgw_requests_total", **labels) == \
        _value(before, "hxgw_requests_total", **labels) + 1
    for name in ("hxgw_request_duration_seconds_count", "hxgw_time_to_first_byte_seconds_count"):
        assert _value(after, name, endpoint="chat", model="alpha") == \
            _value(before, name, endpoint="chat", model="alpha") + 1
    assert _value(after, "hxgw_gateway_overhead_seconds_count") == \
        _value(before, "hxgw_gateway_overhead_seconds_count") + 1


async def test_failovers_and_upstream_errors_are_counted(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=503)
    await _chat(gateway, client)
    text = await _scrape(gateway, client)
    assert _value(text, "hxgw_failovers_total", group="chat", from_model="alpha",
                  to_model="beta") == 1
    assert _value(text, "hxgw_upstream_errors_total", model="alpha", kind="http_503") == 1


async def test_a_warning_logged_while_serving_a_request_carries_its_id(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=503)
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers={**gateway.auth, "X-Request-ID": "trace-me-7"}) as resp:
        assert resp.status == 200
    await wait_for(lambda: "upstream error" in gateway.logs())
    warning = next(line for line in gateway.logs().splitlines() if "upstream error" in line)
    assert warning.endswith("request_id=trace-me-7")


async def test_tokens_are_counted_from_usage_plain_and_streamed(
    gateway: Gateway, client: aiohttp.ClientSession
):
    await _chat(gateway, client)  # usage: 3 prompt, 6 completion
    await _chat(gateway, client, CHAT | {"stream": True, "stream_options": {"include_usage": True}})
    text = await _scrape(gateway, client)
    assert _value(text, "hxgw_tokens_total", model="alpha", kind="prompt") == 6
    assert _value(text, "hxgw_tokens_total", model="alpha", kind="completion") == 12


async def test_active_streams_and_inflight_show_a_live_stream(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gate = asyncio.Event()
    fake.behave("m-alpha", content="a b c", gate=gate)
    async with aiohttp.ClientSession() as other:
        resp = await stream_under_way(other, gateway)
        during = await _scrape(gateway, client)
        gate.set()
        await resp.read()
    after = await _scrape(gateway, client)
    assert _value(during, "hxgw_active_streams") == 1
    assert _value(during, "hxgw_inflight_requests") == 1
    assert _value(after, "hxgw_active_streams") == 0


async def test_circuit_state_is_exported_per_model(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"default_group": "chat", "circuit_breaker": {"failures": 1},
                           "groups": {"chat": ["alpha", "beta"]}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-alpha", status=500)
    await _chat(gateway, client)
    text = await _scrape(gateway, client)
    assert _value(text, "hxgw_circuit_state", model="alpha") == 1
    assert _value(text, "hxgw_circuit_state", model="beta") == 0


async def test_reloads_and_generation_are_exported(gateway: Gateway, client: aiohttp.ClientSession):
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    text = await _scrape(gateway, client)
    assert _value(text, "hxgw_config_reloads_total", result="ok") == 1
    assert _value(text, "hxgw_config_generation") == 2
    assert _value(text, "process_resident_memory_bytes") > 0


async def test_no_key_or_prompt_text_appears_in_metrics(
    gateway: Gateway, client: aiohttp.ClientSession
):
    secret_prompt = "my-secret-prompt-text-xyz"
    await _chat(gateway, client, {"messages": [{"role": "user", "content": secret_prompt}]})
    text = await _scrape(gateway, client)
    assert gateway.key not in text and secret_prompt not in text


async def test_readyz_is_ready_once_the_upstream_answered(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async def ready() -> int:
        async with client.get(gateway.url + "/readyz") as resp:
            return resp.status

    await wait_for_async(ready, 200)
    async with client.get(gateway.url + "/readyz") as resp:
        body = await resp.json()
    assert body["ready"] is True and body["upstreams"][0]["reachable"] is True


async def test_the_event_loop_lag_is_in_readyz_and_metrics(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/readyz") as resp:
        assert 0 <= (await resp.json())["loop_lag_seconds"] < 60
    assert re.search(r"^hxgw_event_loop_lag_seconds \d", await _scrape(gateway, client), re.M)


async def test_readyz_turns_503_when_the_upstream_goes_away(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"readiness": {"interval": 0.2, "stale_after": 1}})

    async def ready() -> int:
        async with client.get(gateway.url + "/readyz") as resp:
            return resp.status

    await wait_for_async(ready, 200)
    fake.models_down = True
    await wait_for_async(ready, 503)
    async with client.get(gateway.url + "/readyz") as resp:
        body = await resp.json()
    assert body["ready"] is False
    assert "no upstream answered" in body["reasons"][0]
    assert body["upstreams"][0]["last_error"] == "HTTP 503"
    fake.models_down = False
    await wait_for_async(ready, 200)


async def test_no_upstream_answering_is_one_error_line_and_its_end_one_info_line(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # `journalctl -p err` must show an outage in which every request gets a 502.
    gateway = await start_gateway(gateway={"readiness": {"interval": 0.2, "stale_after": 1}})
    fake.models_down = True
    await wait_for(lambda: "no upstream answers" in gateway.logs(), timeout=10)
    fake.models_down = False
    await wait_for(lambda: "an upstream answers again" in gateway.logs(), timeout=10)
    (line,) = [line for line in gateway.logs().splitlines() if "no upstream answers" in line]
    assert " error " in line and "default: HTTP 503" in line


async def test_an_upstream_busy_at_its_cap_with_long_streams_stays_ready_and_sheds_nothing(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    upstream: tuple[FakeUpstream, str],
):
    # Its probe had waited behind the streams for a turn, called the upstream down after
    # `connect` seconds, and counted as shed: a load balancer pulled the busiest instance.
    fake, url = upstream
    capped = {"default": {"url": url, "max_concurrent": 1, "max_queued": 1,
                          "queue_timeout": 5}}
    gateway = await start_gateway(gateway={
        "upstreams": capped, "readiness": {"interval": 0.2, "stale_after": 1},
        "timeouts": {"connect": 0.5, "first_byte": 5, "idle": 5, "total": 30}})

    async def ready() -> int:
        async with client.get(gateway.url + "/readyz") as resp:
            return resp.status

    await wait_for_async(ready, 200)
    fake.behave("m-alpha", content="a b c d e f g h", chunk_delay=0.4)
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"messages": [{"role": "user", "content": "hi"}],
                                 "stream": True}) as resp:
        readiness = []
        async for _ in resp.content.iter_any():
            readiness.append(await ready())
    assert len(readiness) > 4 and set(readiness) == {200}
    assert re.search(r'^hxgw_upstream_shed_total{upstream="default"} 0.0$',
                     await _scrape(gateway, client), re.M)


async def test_an_upstream_a_reload_removed_leaves_the_up_gauge(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    upstream: tuple[FakeUpstream, str],
):
    url = upstream[1]
    both = {"default": {"url": url}, "spare": {"url": url}}
    gateway = await start_gateway(
        gateway={"readiness": {"interval": 0.2}, "upstreams": both})

    async def metrics() -> str:
        async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
            return await resp.text()

    up = 'hxgw_upstream_up{upstream="spare"} 1.0'
    await wait_for_async(metrics, lambda text: up in text)
    path = gateway.config_dir / "gateway.yaml"
    document = yaml.safe_load(path.read_text())
    del document["upstreams"]["spare"]
    path.write_text(yaml.safe_dump(document))
    gateway.signal(signal.SIGHUP)
    # Left at 1, it would keep max(hxgw_upstream_up), the runbook's alert, from firing.
    await wait_for_async(metrics, lambda text: 'upstream="spare"' not in text)
    assert 'hxgw_upstream_up{upstream="default"} 1.0' in await metrics()


async def test_readyz_is_503_until_the_key_store_is_first_read(
    start_gateway: StartGateway, client: aiohttp.ClientSession, dead_port: int
):
    # Started while its PostgreSQL is away: the keys `hxgw keys` made cannot be checked
    # here, where another instance that read them before can.
    away = f"postgresql://hx@127.0.0.1:{dead_port}/hx"
    gateway = await start_gateway(env={"DATABASE_URL": away})
    async with client.get(gateway.url + "/readyz") as resp:
        assert resp.status == 503
        reasons = (await resp.json())["reasons"]
    assert "the key store has not been read yet: no stored key can be checked" in reasons


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    """GET `path` on a kept-alive connection: the answer's status line and headers (its
    body read past), or b"" when the gateway closed the connection instead."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    await reader.readexactly(int(length[1]) if length else 0)
    return head


async def test_readyz_is_503_while_draining(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway()
    held = fake.behave("m-alpha", gate=asyncio.Event())  # a stream that keeps it draining
    assert held.gate is not None
    async with aiohttp.ClientSession() as session:
        stream = await stream_under_way(session, gateway)
        # A keep-alive connection opened before the drain can still ask, once: one the
        # gateway has answered on, so that it holds it (not the kernel's backlog).
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        assert (await _ask(reader, writer, "/healthz")).startswith(b"HTTP/1.1 200")
        gateway.signal(signal.SIGTERM)
        signalled = time.monotonic()
        await wait_for(lambda: "stopping" in gateway.logs())
        late = time.monotonic() - signalled
        head = await _ask(reader, writer, "/readyz")
        writer.close()
        held.gate.set()
        await stream.read()
    if not head and late > 0.5:
        # Its connection's grace (1 s from the listener's close) may have passed first.
        pytest.skip(f"the test asked {late:.1f} s after the stop signal: too late to tell")
    assert head.startswith(b"HTTP/1.1 503"), head


async def test_status_json_shows_models_groups_and_health(
    gateway: Gateway, client: aiohttp.ClientSession
):
    await _chat(gateway, client)
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        assert resp.status == 200
        status = await resp.json()
    assert status["config_generation"] == 1
    models = {m["name"]: m for m in status["models"]}
    assert set(models) == {"alpha", "beta", "gamma", "embed"}
    assert models["alpha"]["requests"] == 1 and models["alpha"]["circuit"] == "closed"
    assert {g["name"] for g in status["groups"]} == {"chat", "solo", "emb"}
    assert status["requests"]["total"] >= 1


async def test_the_status_page_needs_a_key_and_takes_it_as_basic_auth(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/status") as resp:
        assert resp.status == 401
        assert 'Basic realm="hxgw", charset="UTF-8"' in resp.headers.getall("WWW-Authenticate")
    basic = base64.b64encode(f"ops:{gateway.key}".encode()).decode()
    async with client.get(gateway.url + "/status",
                          headers={"Authorization": f"Basic {basic}"}) as resp:
        assert resp.status == 200
        html = await resp.text()
    assert "alpha" in html and "<script" not in html


@pytest.mark.parametrize("path", ["/status.json", "/metrics"])
async def test_an_operator_endpoint_takes_the_key_as_x_api_key_as_the_api_does(
    gateway: Gateway, client: aiohttp.ClientSession, path: str
):
    async with client.get(gateway.url + path, headers={"x-api-key": gateway.key}) as resp:
        assert resp.status == 200
    async with client.get(gateway.url + path, headers={"x-api-key": "sk-wrong"}) as resp:
        assert resp.status == 401


async def test_an_operator_endpoint_refuses_a_key_header_given_twice(
    gateway: Gateway, client: aiohttp.ClientSession
):
    keys = [("Authorization", "Bearer sk-wrong"), ("Authorization", "Bearer " + gateway.key)]
    twice = CIMultiDict(keys)
    async with client.get(gateway.url + "/status.json", headers=twice) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"] == (
            "the request has 2 Authorization headers: send one"
        )


async def test_the_status_page_may_not_be_framed(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.get(gateway.url + "/status", headers=gateway.auth) as resp:
        assert resp.status == 200
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/status", "/status.json", "/metrics"])
async def test_an_operator_endpoint_refused_for_want_of_a_key_offers_bearer_and_basic(
    gateway: Gateway, client: aiohttp.ClientSession, path: str
):
    async with client.get(gateway.url + path) as resp:
        assert resp.status == 401
        challenges = resp.headers.getall("WWW-Authenticate", [])
    assert challenges == ['Bearer realm="hxgw"', 'Basic realm="hxgw", charset="UTF-8"']


@pytest.mark.parametrize(("path", "keyed"), [
    ("/healthz", False), ("/readyz", False), ("/openapi.json", False), ("/metrics", True),
    ("/status.json", True), ("/status", False),  # the last refused: 401
])
async def test_an_operator_endpoint_answers_with_the_request_s_id(
    gateway: Gateway, client: aiohttp.ClientSession, path: str, keyed: bool
):
    headers = {**(gateway.auth if keyed else {}), "X-Request-ID": "probe-" + path[1:]}
    async with client.get(gateway.url + path, headers=headers) as resp:
        await resp.read()
        assert resp.headers["X-Request-ID"] == "probe-" + path[1:]


async def test_a_status_refusal_tells_the_user_both_schemes_work(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/status") as resp:
        message = (await resp.json())["error"]["message"]
    assert "Bearer" in message and "Basic" in message


async def test_a_group_limited_key_may_not_read_status(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path
):
    limited = new_key("sk-limited")
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - name: ui\n    key: {limited}\n    groups: [chat]\n")
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)}})
    async with client.get(gateway.url + "/status.json",
                          headers={"Authorization": f"Bearer {limited}"}) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "operator_key_required"


async def test_an_application_key_from_hxgw_keys_gets_403_on_status_and_is_no_bad_key(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 2}})
    made = subprocess.run([HXGW, "keys", "create", "app", "--config-dir", str(gateway.config_dir)],
                          env={**os.environ, "HX_STATE_DIR": gateway.env()["HX_STATE_DIR"]},
                          capture_output=True, text=True, check=True)
    app = {"Authorization": f"Bearer {made.stdout.strip()}"}
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):  # past max_bad_keys, were it counted as a guess; the first at once
        async with client.get(gateway.url + "/status.json", headers=app) as resp:
            assert resp.status == 403
            assert "hxgw keys" in (await resp.json())["error"]["message"]
    async with client.post(gateway.url + "/v1/chat/completions", headers=app, json=chat) as resp:
        assert resp.status == 200


async def test_an_app_key_that_has_expired_is_no_key_on_status(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=6)
    made = subprocess.run(
        [HXGW, "keys", "create", "app", "--expires", soon.isoformat(),
         "--config-dir", str(gateway.config_dir)],
        env={**os.environ, "HX_STATE_DIR": gateway.env()["HX_STATE_DIR"]},
        capture_output=True, text=True, check=True)
    app = {"Authorization": f"Bearer {made.stdout.strip()}"}

    async def status() -> int:
        async with client.get(gateway.url + "/status.json", headers=app) as resp:
            return resp.status

    assert await status() == 403
    # Expired with no change to the store since: the gateway's copy still holds it.
    await wait_for_async(status, 401)


async def test_the_openapi_document_is_served(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.get(gateway.url + "/openapi.json") as resp:
        assert resp.status == 200
        document = await resp.json()
    assert document["openapi"].startswith("3.1")


async def wait_for_async(probe, expected, timeout: float = 10.0) -> None:
    """Until `probe()` gives `expected`, or passes it when `expected` is a check."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await probe()
        if expected(value) if callable(expected) else value == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"did not become {expected} within {timeout}s")


async def test_a_stalled_model_shows_as_stalled_in_the_status_and_the_metrics(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Skipped with its circuit closed: what an operator reads must not say it is fine.
    routing = {"routing": {"default_group": "solo", "groups": {"solo": ["gamma"]},
                           "health": {"stall_floor": 0.3}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-gamma", header_delay=2)
    waiting = asyncio.ensure_future(client.post(
        gateway.url + "/v1/chat/completions", headers=gateway.auth,
        json={"messages": [{"role": "user", "content": "hi"}]}))
    await asyncio.sleep(0.8)
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        gamma = next(m for m in (await resp.json())["models"] if m["name"] == "gamma")
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        metrics = await resp.text()
    async with client.get(gateway.url + "/status", headers=gateway.auth) as resp:
        page = await resp.text()
    async with await waiting as answered:
        assert answered.status == 200
    assert (gamma["circuit"], gamma["stalled"]) == ("closed", True)
    assert 'hxgw_model_stalled{model="gamma"} 1.0' in metrics
    assert 'data-model="gamma" data-circuit="stalled"' in page
