"""The series the runbook's alerts read, as a real `hxgw serve` exports them: each must
exist before its first event, or `increase()` never sees that event."""

from __future__ import annotations

import asyncio
import fcntl
import json
import re
import signal
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.fake_upstream import Behaviour, FakeUpstream
from tests.fixtures import Gateway, poll, wait_for
from tests.redis_server import RedisServer, redis_server  # noqa: F401 -- a fixture


async def _scrape(gateway: Gateway, client: aiohttp.ClientSession) -> str:
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        assert resp.status == 200
        return await resp.text()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels}` (labels matched as a subset); None when absent."""
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def _break_routing(gateway: Gateway) -> None:
    doc = {"routing": {"default_group": "chat", "groups": {"chat": ["llm03"]}}}
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(doc))


async def test_each_reload_result_is_exported_at_zero_before_any_reload(
    gateway: Gateway, client: aiohttp.ClientSession
):
    text = await _scrape(gateway, client)
    for result in ("ok", "rejected", "failed"):
        assert _sample(text, "hxgw_config_reloads_total", result=result) == 0


async def test_a_rejected_reload_sets_last_reload_successful_to_zero_until_one_takes(
    gateway: Gateway, client: aiohttp.ClientSession
):
    assert _sample(await _scrape(gateway, client), "hxgw_config_last_reload_successful") == 1
    routing = (gateway.config_dir / "routing.yaml").read_text()
    _break_routing(gateway)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reload rejected" in gateway.logs())
    assert _sample(await _scrape(gateway, client), "hxgw_config_last_reload_successful") == 0
    (gateway.config_dir / "routing.yaml").write_text(routing)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    assert _sample(await _scrape(gateway, client), "hxgw_config_last_reload_successful") == 1


async def _status(gateway: Gateway, client: aiohttp.ClientSession) -> dict:
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        assert resp.status == 200
        return await resp.json()


async def _page(gateway: Gateway, client: aiohttp.ClientSession) -> str:
    async with client.get(gateway.url + "/status", headers=gateway.auth) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_an_upstream_litellm_without_a_database_refusing_the_key_is_said_how_to_fix(
    start_gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # LiteLLM 1.102 without a database takes only its master key, and says so with a 400.
    fake.models_refusal = Behaviour(status=400, error_message="No connected db.",
                                    error_type="no_db_connection")
    gateway = await start_gateway(wait=False)
    await wait_for(lambda: "upstream probe failed" in gateway.logs())
    (upstream,) = (await _status(gateway, client))["upstreams"]
    assert upstream["last_error"] == (
        "HTTP 400: the upstream refuses the gateway's key (LiteLLM without a database takes"
        " only its master key: set HX_UPSTREAM_KEY to it)")


async def test_a_readiness_probe_answered_503_is_logged_as_not_ready_at_info(
    start_gateway, client: aiohttp.ClientSession, dead_port: int
):
    # A load balancer's probe, every few seconds, of an outage logged once at err: at
    # warning, it had buried `journalctl -p warning`.
    gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{dead_port}")
    await wait_for(lambda: "upstream probe failed" in gateway.logs())
    async with client.get(gateway.url + "/readyz") as resp:
        assert resp.status == 503
    await wait_for(lambda: "GET /readyz status=503" in gateway.logs())
    (line,) = [x for x in gateway.logs().splitlines() if "GET /readyz status=503" in x]
    assert "outcome=not_ready" in line and " info GET /readyz" in line


async def test_status_says_why_the_gateway_is_not_ready_and_each_upstream_s_last_error(
    start_gateway, client: aiohttp.ClientSession, dead_port: int
):
    gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{dead_port}")
    await wait_for(lambda: "upstream probe failed" in gateway.logs())
    status = await _status(gateway, client)
    assert status["ready"] is False
    assert any("no upstream answered" in reason for reason in status["reasons"])
    assert "cannot connect" in status["upstreams"][0]["last_error"]
    page = await _page(gateway, client)
    assert "not ready" in page and "no upstream answered" in page


async def test_status_shows_the_ledger_and_limits_store_as_metrics_count_them(
    gateway: Gateway, client: aiohttp.ClientSession
):
    status = await _status(gateway, client)
    text = await _scrape(gateway, client)
    ledger = status["ledger"]
    assert ledger["spool_bytes"] == _sample(text, "hxgw_ledger_spool_bytes") == 0
    assert ledger["rows_dropped"] == _sample(text, "hxgw_ledger_rows_total", result="dropped")
    assert status["limits_store"] == {"kind": "local", "reachable": True}
    page = await _page(gateway, client)
    assert "Usage ledger" in page and "Limits store" in page


async def _scrape_fresh(gateway: Gateway, path: str) -> str:
    async with (  # a new connection each time, so either worker may answer
        aiohttp.ClientSession() as fresh,
        fresh.get(gateway.url + path, headers=gateway.auth) as resp,
    ):
        return await resp.text()


@pytest.mark.workers
async def test_the_spool_the_workers_share_is_counted_once_in_metrics_and_status(
    start_gateway, tmp_path: Path
):
    spool = tmp_path / "state-config0" / "spool"
    spool.mkdir(parents=True, mode=0o700)
    # A spool file a live process holds (its rows not yet written): each worker skips it
    # on replay and counts it in the shared spool's size.
    with (spool / f"{1:020d}-1.jsonl").open("ab") as held:
        held.write(b"x" * 1000)
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        gateway = await start_gateway(gateway={"workers": 2})
        await asyncio.gather(*(_chat_fresh(gateway) for _ in range(20)))
        served = set(re.findall(r"POST /v1/chat/completions .* worker=(\d)", gateway.logs()))
        assert served == {"0", "1"}
        # Until a scrape has both workers' figures: each shares them once a second.
        async def both_counted() -> bool:
            return _sample(await _scrape_fresh(gateway, "/metrics"), "hxgw_requests_total") == 20

        await poll(both_counted, what="a scrape that counts the 20 requests of both workers")
        for _ in range(6):
            text = await _scrape_fresh(gateway, "/metrics")
            assert _sample(text, "hxgw_ledger_spool_bytes") == 1000
            status = json.loads(await _scrape_fresh(gateway, "/status.json"))
            assert status["ledger"]["spool_bytes"] == 1000


async def _chat_fresh(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as fresh,
        fresh.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                   json={"messages": [{"role": "user", "content": "hi"}]}) as resp,
    ):
        assert resp.status == 200


async def test_the_spool_gauge_follows_the_directory_when_another_process_empties_it(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path
):
    spool = tmp_path / "state-config0" / "spool"
    spool.mkdir(parents=True, mode=0o700)
    path = spool / f"{1:020d}-1.jsonl"
    with path.open("ab") as held:
        held.write(b"x" * 1000)
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        gateway = await start_gateway()
        assert _sample(await _scrape(gateway, client), "hxgw_ledger_spool_bytes") == 1000
        # Replayed by another worker, or moved out by the operator (the runbook's fix
        # for a file the gateway cannot read): this process wrote nothing meanwhile.
        path.unlink()
    assert _sample(await _scrape(gateway, client), "hxgw_ledger_spool_bytes") == 0
    assert (await _status(gateway, client))["ledger"]["spool_bytes"] == 0


async def _key_gateway(
    start_gateway, tmp_path: Path, env: dict[str, str] | None = None, workers: int = 1,
    **limits: object,
) -> tuple[Gateway, str]:
    secret = "sk-app-" + "a" * 32
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, **limits}]}))
    keys.chmod(0o600)
    priced = {"input_per_mtok": 1000, "output_per_mtok": 1000}  # cents a request
    models = [{"name": n, "upstream_model": f"m-{n}", "tier_score": 0.5, "specializations": [],
               "price": priced} for n in ("alpha", "beta")]
    routing = {"routing": {"default_group": "chat", "groups": {"chat": ["alpha", "beta"]}}}
    gateway = await start_gateway(models=models, routing=routing, env=env,
                                  gateway={"auth": {"keys_file": str(keys)},
                                           "workers": workers})
    return gateway, secret


async def _chat_as(client: aiohttp.ClientSession, gateway: Gateway, secret: str) -> int:
    async with client.post(gateway.url + "/v1/chat/completions",
                           json={"messages": [{"role": "user", "content": "hi"}],
                                 "max_tokens": 10},
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        await resp.read()
        return resp.status


async def test_a_key_s_refusals_are_counted_by_limit_from_zero(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, rpm=1)
    assert await _chat_as(client, gateway, secret) == 200
    text = await _scrape(gateway, client)
    for outcome in ("rate_limit_exceeded", "insufficient_quota"):
        assert _sample(text, "hxgw_key_refused_total", key="app", outcome=outcome) == 0
    assert await _chat_as(client, gateway, secret) == 429
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_key_refused_total", key="app",
                   outcome="rate_limit_exceeded") == 1
    assert _sample(text, "hxgw_key_refused_total", key="app", outcome="insufficient_quota") == 0


async def test_a_key_over_its_budget_is_counted_as_refused_for_its_budget(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, budget=0.001)
    assert await _chat_as(client, gateway, secret) == 429
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_key_refused_total", key="app", outcome="insufficient_quota") == 1



async def test_the_spool_s_limit_is_exported_beside_its_size(
    start_gateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"store": {"spool_max_bytes": 123456}})
    text = await _scrape(gateway, client)
    assert _sample(text, "hxgw_ledger_spool_limit_bytes") == 123456


async def test_status_says_the_limits_store_is_down_while_redis_does_not_answer(
    start_gateway, client: aiohttp.ClientSession, tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
):
    gateway, secret = await _key_gateway(start_gateway, tmp_path, rpm=100,
                                         env={"REDIS_URL": redis_server.url})
    assert await _chat_as(client, gateway, secret) == 200
    assert (await _status(gateway, client))["limits_store"] == {
        "kind": "redis", "reachable": True, "failures": 0}
    redis_server.stop()
    assert await _chat_as(client, gateway, secret) == 503
    store = (await _status(gateway, client))["limits_store"]
    assert store["reachable"] is False and store["failures"] >= 1
    page = await _page(gateway, client)
    assert "Limits store" in page and "failed calls" in page


async def test_the_runbook_names_every_metric_the_gateway_exports_and_no_other(
    gateway: Gateway, client: aiohttp.ClientSession
):
    text = await _scrape(gateway, client)
    exported = set(re.findall(r"^# TYPE (hxgw_\w+) (\w+)", text, re.M))
    names = {
        name + "_total" if kind == "counter" and not name.endswith("_total") else name
        for name, kind in exported
    }
    runbook = (Path(__file__).parents[2] / "docs" / "runbook.md").read_text()
    named = set(re.findall(r"\b(hxgw_[a-z_]+[a-z])", runbook))
    # Families split into _bucket/_sum/_count are named by their base in the runbook.
    named = {re.sub(r"_(bucket|sum|count)$", "", name) for name in named}
    assert names - named == set()
    redis_only = {"hxgw_limits_store_up", "hxgw_limits_store_failures_total"}
    assert named - names - redis_only == set()


async def test_the_key_store_is_exported_down_while_it_cannot_be_read(
    start_gateway, client: aiohttp.ClientSession, dead_port: int
):
    down = f"postgresql://hxgw@127.0.0.1:{dead_port}/hxgw"
    gateway = await start_gateway(env={"DATABASE_URL": down})
    assert _sample(await _scrape(gateway, client), "hxgw_key_store_up") == 0
    assert (await _status(gateway, client))["key_store"] == {"reachable": False}
    assert '<span class="badge bad">unread</span>' in await _page(gateway, client)


async def test_the_key_store_is_exported_up_once_read(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async def up() -> float | None:
        return _sample(await _scrape(gateway, client), "hxgw_key_store_up")

    for _ in range(100):  # read once a second from the start
        if await up() == 1:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("hxgw_key_store_up never said 1")
    assert (await _status(gateway, client))["key_store"] == {"reachable": True}


async def test_the_help_of_each_metric_says_what_it_counts_and_how_to_read_it(
    gateway: Gateway, client: aiohttp.ClientSession
):
    text = await _scrape(gateway, client)
    helps = dict(re.findall(r"^# HELP (hxgw_\w+) (.*)$", text, re.M))
    assert "circuit breaker" in helps["hxgw_circuit_state"]
    assert "kind" in helps["hxgw_upstream_errors_total"]
    assert "API requests" in helps["hxgw_requests_total"]
    assert "499" in helps["hxgw_requests_total"]
    assert "API requests" in helps["hxgw_inflight_requests"]
    assert "readiness.stale_after" in helps["hxgw_upstream_up"]
    assert "failed" in helps["hxgw_failovers_total"]
