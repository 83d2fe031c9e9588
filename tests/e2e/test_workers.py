"""`workers: 2`: one supervisor, two worker processes on one socket, one voice to systemd."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, NotifySocket, stream_under_way, wait_for

pytestmark = pytest.mark.workers

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def _start(start_gateway: StartGateway, notify: NotifySocket,
                 **settings: Any) -> tuple[Gateway, NotifySocket]:
    gateway = await start_gateway(gateway={"workers": 2, **settings},
                                  env={"NOTIFY_SOCKET": notify.path})
    await wait_for(lambda: notify.drain())
    return gateway, notify


def _worker_pid(gateway: Gateway, index: int) -> int:
    """Worker `index`'s process, as the supervisor's start line lists them."""
    pids = re.search(r'listening .* pids="([\d; ]+)"', gateway.logs())
    assert pids is not None, gateway.logs()
    return int(pids.group(1).split("; ")[index])


def _worker_pids(gateway: Gateway) -> list[int]:
    assert gateway.process is not None
    children = Path(f"/proc/{gateway.process.pid}/task/{gateway.process.pid}/children")
    return [int(pid) for pid in children.read_text().split()]


async def test_ready_is_sent_once_when_every_worker_is_ready(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    await asyncio.sleep(0.3)
    readies = [m for m in notify.drain() if m.get("READY") == "1"]
    assert len(readies) == 1
    assert readies[0]["STATUS"].startswith("2 workers on 127.0.0.1:")
    assert len(_worker_pids(gateway)) == 2


async def test_what_every_worker_would_say_alike_at_start_is_said_once_by_worker_0(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, _ = await _start(start_gateway, notify)
    await wait_for(lambda: "workers=2" in gateway.logs())
    lines = gateway.logs().splitlines()
    for said in ("usage ledger", "key limits", "capacity", "listening host="):
        alike = [line for line in lines if f" info {said}" in line and "worker=" in line]
        assert len(alike) == 1 and alike[0].endswith("worker=0"), (said, lines)


async def test_every_worker_still_says_what_its_own_requests_meet(
    start_gateway: StartGateway, notify: NotifySocket
):
    # Worker 0 speaks for the others at start: their requests' lines must not be silenced.
    gateway, _ = await _start(start_gateway, notify, auth={"max_bad_keys": 1})
    bad = {"Authorization": "Bearer sk-not-a-key"}
    for _ in range(40):  # new connections, until each worker has locked the address out
        async with aiohttp.ClientSession() as fresh, fresh.post(
            gateway.url + "/v1/chat/completions", json=CHAT, headers=bad
        ):
            pass
        said = re.findall(r"too many bad keys.* worker=(\d)", gateway.logs())
        if set(said) == {"0", "1"}:
            break
    assert set(said) == {"0", "1"}


async def test_the_status_says_the_config_generation_and_models_the_workers_serve(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    await wait_for(lambda: any(m.get("READY") == "1" for m in notify.drain()))
    ready = next(m for m in notify.messages if m.get("READY") == "1")
    assert re.search(r"; config generation 1; \d+ models in \d+ groups?; ready$", ready["STATUS"])
    doc = {"routing": {"default_group": "chat", "groups": {"chat": ["beta"]}}}
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: any("last reload" in m.get("STATUS", "") for m in notify.drain()),
                   timeout=10)
    reloaded = [m["STATUS"] for m in notify.messages if "last reload" in m.get("STATUS", "")]
    assert "; config generation 2; " in reloaded[0]
    assert " models in 1 group; last reload: ok: generation 2, changed routing.yaml" in reloaded[0]


async def test_requests_are_served_by_both_workers(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway, _ = await _start(start_gateway, notify)

    async def one() -> int:
        async with (  # a new connection each time
            aiohttp.ClientSession() as fresh,
            fresh.post(gateway.url + "/v1/chat/completions", json=CHAT,
                       headers=gateway.auth) as resp,
        ):
            return resp.status

    assert set(await asyncio.gather(*(one() for _ in range(40)))) == {200}
    served = set(re.findall(r"POST /v1/chat/completions status=200 .* worker=(\d)", gateway.logs()))
    assert served == {"0", "1"}


async def test_sighup_reloads_every_worker_then_reports_ready_once(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway, notify = await _start(start_gateway, notify)
    doc = {"routing": {"default_group": "chat", "groups": {"chat": ["beta"]}}}
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    # The log line is written before READY=1 is sent: wait for the datagram too.
    await wait_for(lambda: notify.drain()[-1].get("READY") == "1")
    messages = notify.drain()
    reloading = [m for m in messages if m.get("RELOADING") == "1"]
    assert len(reloading) == 1 and "MONOTONIC_USEC" in reloading[0]
    assert messages[-1].get("READY") == "1"
    assert gateway.logs().count("config reloaded generation=2") == 1  # worker 0's, for both
    for _ in range(6):
        async with (
            aiohttp.ClientSession() as fresh,
            fresh.post(gateway.url + "/v1/chat/completions", json=CHAT,
                       headers=gateway.auth) as resp,
        ):
            assert resp.headers["X-HX-Model"] == "beta"


async def test_a_worker_that_dies_is_started_again(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway, _ = await _start(start_gateway, notify)
    victim = _worker_pids(gateway)[0]
    os.kill(victim, signal.SIGKILL)
    await wait_for(lambda: "worker exited; starting it again" in gateway.logs())
    await wait_for(lambda: len(_worker_pids(gateway)) == 2 and victim not in _worker_pids(gateway),
                   timeout=10)
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
    # Killed seconds after it started, but it had served: its socket stays, its queue with it.
    assert "worker cannot start" not in gateway.logs()
    assert "config files changed since the last reload" not in gateway.logs()


async def test_a_worker_starting_during_a_reload_is_reloaded_once_it_serves(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, _ = await _start(start_gateway, notify)
    os.kill(_worker_pid(gateway, 0), signal.SIGKILL)  # worker 0 says a reload for all
    await wait_for(lambda: "worker exited; starting it again" in gateway.logs())
    gateway.signal(signal.SIGHUP)  # it may read the files before this reload's change
    await wait_for(lambda: "workers reloaded workers=1" in gateway.logs())
    # Once it serves it is asked too.
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)
    await wait_for(lambda: "config reloaded" in gateway.logs().split("worker started again")[1])


async def test_a_worker_started_again_on_files_changed_since_the_reload_is_an_error(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    doc = {"routing": {"default_group": "chat", "groups": {"chat": ["beta"]}}}
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(doc))  # not reloaded
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    # A change staged for later now serves half the connections: the operator hears it.
    await wait_for(lambda: "serves config files changed since the last reload"
                   in gateway.logs(), timeout=15)
    await wait_for(lambda: any("config files changed" in m.get("STATUS", "")
                               for m in notify.drain()))


def _add_keys_file(gateway: Gateway, mode: int) -> None:
    """A keys file in the gateway's config dir, named by its gateway.yaml."""
    keys = gateway.config_dir / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": "sk-app-" + "x" * 40}]}))
    keys.chmod(mode)
    path = gateway.config_dir / "gateway.yaml"
    document = yaml.safe_load(path.read_text())
    document["auth"] = {"keys_file": "keys.yaml"}
    path.write_text(yaml.safe_dump(document))


async def test_a_worker_started_again_after_a_reload_that_added_a_file_is_no_alarm(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, _ = await _start(start_gateway, notify)
    _add_keys_file(gateway, 0o600)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)
    await asyncio.sleep(0.5)  # what it says of the files comes just after
    assert "config files changed since the last reload" not in gateway.logs()


async def test_a_worker_started_again_says_its_start_itself_and_what_it_warns_of(
    start_gateway: StartGateway, notify: NotifySocket
):
    # Worker 0 said the first start for both, of files that changed since (no reload).
    gateway, _ = await _start(start_gateway, notify)
    _add_keys_file(gateway, 0o644)  # every user may read it: a warning
    os.kill(_worker_pids(gateway)[1], signal.SIGKILL)
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)
    again = gateway.logs().split("worker exited; starting it again")[1].splitlines()
    assert any(" info listening " in line and line.endswith("worker=1") for line in again)
    assert any("a file with secrets is readable by every user" in line
               and line.endswith("worker=1") for line in again), again


async def _reload_json_logs_then_kill(gateway: Gateway, worker: int) -> None:
    """Reload a change only a restart makes (logging.format, json from kv), then kill
    worker `worker` and wait until it is started again."""
    path = gateway.config_dir / "gateway.yaml"
    document = yaml.safe_load(path.read_text())
    document["logging"] = {**document.get("logging", {}), "format": "json"}
    path.write_text(yaml.safe_dump(document))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    os.kill(_worker_pid(gateway, worker), signal.SIGKILL)
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)


async def test_a_worker_started_again_runs_a_change_only_a_restart_makes_as_its_siblings_do(
    start_gateway: StartGateway, notify: NotifySocket
):
    # It had read the staged change and taken it alone: with TLS, half the connections.
    gateway, _ = await _start(start_gateway, notify)
    await _reload_json_logs_then_kill(gateway, 1)
    again = gateway.logs().split("worker exited; starting it again")[1].splitlines()
    assert any(" info listening " in line and line.endswith("worker=1") for line in again)
    assert not any(line.startswith("{") for line in again), again


async def test_a_change_only_a_restart_makes_still_waits_after_worker_0_is_started_again(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    await _reload_json_logs_then_kill(gateway, 0)  # worker 0 speaks for all at a reload
    gateway.begin_test()
    notify.drain()
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    assert "restart_needed=logging" in gateway.logs()
    await wait_for(lambda: any("waiting for a restart: logging" in m.get("STATUS", "")
                               for m in notify.drain()))


async def test_a_worker_that_dies_during_a_reload_is_started_again_and_the_reload_ends(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway, notify = await _start(start_gateway, notify)
    victim = _worker_pids(gateway)[0]
    gateway.signal(signal.SIGHUP)
    os.kill(victim, signal.SIGKILL)
    # Not "incomplete" 30 s later, with the dead worker's socket taking connections.
    await wait_for(lambda: "workers reloaded" in gateway.logs(), timeout=10)
    await wait_for(lambda: len(_worker_pids(gateway)) == 2 and victim not in _worker_pids(gateway),
                   timeout=10)
    assert "not every worker confirmed" not in gateway.logs()
    assert "never retrieved" not in gateway.logs()
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 200


async def _stop_with_a_stream_under_way(gateway: Gateway) -> None:
    """SIGTERM while a stream runs: the stream ends whole, then the daemon exits 0."""
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)
        text = (await resp.read()).decode()
    assert text.rstrip().endswith("data: [DONE]")
    assert gateway.process is not None and gateway.process.wait(15) == 0


async def test_sigterm_drains_every_worker_and_exits_0(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    gateway, notify = await _start(start_gateway, notify)
    fake.behave("m-alpha", content="a b c d e f", chunk_delay=0.2)
    await _stop_with_a_stream_under_way(gateway)
    assert any(m.get("STOPPING") == "1" for m in notify.drain())


async def test_a_sigterm_to_the_whole_process_group_drains_as_one_sigterm(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    # As `timeout`, supervisord's stopasgroup or KillMode=control-group send it: each
    # worker hears it twice, from the kernel and from its supervisor.
    gateway, _ = await _start(start_gateway, notify)
    fake.behave("m-alpha", content="a b c d e f", chunk_delay=0.2)
    assert gateway.process is not None
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        os.killpg(gateway.process.pid, signal.SIGTERM)
        text = (await resp.read()).decode()
    assert text.rstrip().endswith("data: [DONE]")
    assert gateway.process.wait(15) == 0
    assert "second stop signal" not in gateway.logs()


async def test_a_sighup_to_the_whole_process_group_reloads_each_worker_once(
    start_gateway: StartGateway, notify: NotifySocket
):
    # As `kill -HUP -- -PGID` sends it: each worker hears it from the kernel too.
    gateway, _ = await _start(start_gateway, notify)
    assert gateway.process is not None
    os.killpg(gateway.process.pid, signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    await asyncio.sleep(1)  # a second reload of a worker would be done by now
    assert "workers reloaded workers=2" in gateway.logs()
    assert gateway.logs().count("config reloaded") == 1  # worker 0's, for both
    for _ in range(6):
        status = json.loads(await _scrape_fresh(gateway, "/status.json"))
        assert status["config_generation"] == 2
        metrics = await _scrape_fresh(gateway, "/metrics")
        assert 'hxgw_config_reloads_total{result="ok"} 1.0' in metrics


async def test_a_second_sigterm_to_the_supervisor_ends_the_workers_drains_now(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    gateway, _ = await _start(start_gateway, notify, shutdown={"drain_timeout": 60})
    fake.behave("m-alpha", content="a " * 100, chunk_delay=0.2)
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)
        await wait_for(lambda: "stopping workers=2" in gateway.logs())
        gateway.signal(signal.SIGTERM)
        text = (await asyncio.wait_for(resp.read(), 5)).decode()
    assert "the gateway stopped this stream" in text
    assert gateway.process is not None and gateway.process.wait(5) == 0


def _chat_requests(metrics_text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith('hxgw_requests_total{endpoint="chat"'))


async def _scrape_fresh(gateway: Gateway, path: str) -> str:
    async with (  # a new connection each time, so either worker may answer
        aiohttp.ClientSession() as fresh,
        fresh.get(gateway.url + path, headers=gateway.auth) as resp,
    ):
        return await resp.text()


async def _serve_40(gateway: Gateway) -> None:
    async def one() -> None:
        async with (
            aiohttp.ClientSession() as fresh,
            fresh.post(gateway.url + "/v1/chat/completions", json=CHAT,
                       headers=gateway.auth) as resp,
        ):
            assert resp.status == 200

    await asyncio.gather(*(one() for _ in range(40)))
    served = set(re.findall(r"POST /v1/chat/completions status=200 .* worker=(\d)", gateway.logs()))
    assert served == {"0", "1"}  # both workers served some: neither alone saw 40


async def _until_scrapes_say_40(gateway: Gateway) -> None:
    """Until six fresh scrapes in a row of each of /metrics and /status.json say 40. Each
    worker shares its figures once a second: until both have since serving, the one that
    answers may not have the other's yet."""
    async def scrapes_say_40() -> bool:
        for _ in range(6):
            if _chat_requests(await _scrape_fresh(gateway, "/metrics")) != 40:
                return False
            status = json.loads(await _scrape_fresh(gateway, "/status.json"))
            if status["requests"]["total"] != 40:
                return False
        return True

    for _ in range(50):
        if await scrapes_say_40():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the workers' request counts never added up to 40")


async def test_metrics_and_status_add_up_over_the_workers(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, _ = await _start(start_gateway, notify)
    await _serve_40(gateway)
    await _until_scrapes_say_40(gateway)


async def test_a_worker_started_again_keeps_the_daemons_counts_and_config_generation(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, _ = await _start(start_gateway, notify)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    await _serve_40(gateway)
    await _until_scrapes_say_40(gateway)
    victim = _worker_pids(gateway)[0]
    os.kill(victim, signal.SIGKILL)
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)
    # Its requests are still counted: a drop would be a counter reset to Prometheus.
    await _until_scrapes_say_40(gateway)
    for _ in range(6):
        status = json.loads(await _scrape_fresh(gateway, "/status.json"))
        assert status["requests"]["total"] == 40
        assert status["config_generation"] == 2
        metrics = await _scrape_fresh(gateway, "/metrics")
        assert 'hxgw_config_reloads_total{result="ok"} 1.0' in metrics


async def test_the_uptime_and_start_time_are_the_daemon_s_whichever_worker_answers(
    start_gateway: StartGateway, notify: NotifySocket
):
    # A worker started again had said its own uptime, seconds, as the daemon's, and moved
    # process_start_time_seconds, which Prometheus reads as a restart of the daemon.
    gateway, _ = await _start(start_gateway, notify)
    started = _start_time(await _scrape_fresh(gateway, "/metrics"))
    await asyncio.sleep(3)
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)
    for _ in range(8):
        status = json.loads(await _scrape_fresh(gateway, "/status.json"))
        assert status["uptime_seconds"] >= 3
        assert _start_time(await _scrape_fresh(gateway, "/metrics")) == started


def _start_time(metrics_text: str) -> float:
    found = re.search(r"^process_start_time_seconds (\S+)$", metrics_text, re.M)
    assert found, metrics_text
    return float(found[1])


async def test_the_status_page_says_the_daemon_s_last_reload_after_a_worker_started_again(
    start_gateway: StartGateway, notify: NotifySocket
):
    # The worker started again has taken part in no reload: it had said "none" for both.
    gateway, _ = await _start(start_gateway, notify)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)
    await asyncio.sleep(1.5)  # each worker shares its figures once a second
    results = [json.loads(await _scrape_fresh(gateway, "/status.json"))["last_reload"]["result"]
               for _ in range(8)]
    assert results == ["ok"] * 8


async def test_the_status_page_shows_a_model_s_circuit_open_in_any_worker(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta"]},
                           "circuit_breaker": {"failures": 1, "cooldown": 60}}}
    gateway = await start_gateway(gateway={"workers": 2}, routing=routing,
                                  env={"NOTIFY_SOCKET": notify.path})
    await wait_for(lambda: notify.drain())
    fake.behave("m-alpha", status=500)
    async with aiohttp.ClientSession() as fresh, fresh.post(
        gateway.url + "/v1/chat/completions", json=CHAT, headers=gateway.auth
    ) as resp:
        assert resp.status == 200  # beta served it; alpha's circuit opened in one worker
    await asyncio.sleep(1.5)
    circuits = []
    for _ in range(8):
        status = json.loads(await _scrape_fresh(gateway, "/status.json"))
        circuits += [m["circuit"] for m in status["models"] if m["name"] == "alpha"]
    assert circuits == ["open"] * 8


async def test_a_reload_asked_for_while_the_workers_start_kills_nothing_and_is_carried_out(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"workers": 2}, wait=False)
    # A worker serves; the supervisor may still be waiting for the other one, and has
    # no handler of its own for SIGHUP until both do.
    await wait_for(lambda: re.search(r"listening .*version=", gateway.logs()), timeout=30,
                   interval=0.005)
    doc = {"routing": {"strategy": "failover", "default_group": "chat",
                       "groups": {"chat": ["beta"]}}}
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs(), timeout=30)
    assert gateway.process is not None and gateway.process.poll() is None
    for _ in range(4):  # fresh connections: both workers
        async with aiohttp.ClientSession() as fresh, fresh.post(
            gateway.url + "/v1/chat/completions", json=CHAT, headers=gateway.auth
        ) as resp:
            assert resp.headers["X-HX-Model"] == "beta"


async def test_a_sigterm_while_the_workers_start_is_a_stop_that_exits_0(
    start_gateway: StartGateway,
):
    # A worker that is ready serves while the others start: the supervisor must stop as
    # at any other time, telling them to drain, not die of the signal on the spot.
    gateway = await start_gateway(gateway={"workers": 2}, wait=False)
    await wait_for(lambda: _worker_pids(gateway), timeout=30, interval=0.001)
    gateway.signal(signal.SIGTERM)
    assert gateway.process is not None and gateway.process.wait(30) == 0
    assert "stopping workers=2" in gateway.logs()
    assert "did not become ready" not in gateway.logs()


async def test_workers_stop_when_their_supervisor_is_killed(start_gateway: StartGateway):
    gateway = await start_gateway(gateway={"workers": 2})
    await wait_for(lambda: len(_worker_pids(gateway)) == 2)
    workers = _worker_pids(gateway)
    assert gateway.process is not None
    gateway.process.kill()  # SIGKILL, as the OOM killer would: nothing of it runs after
    gateway.process.wait()
    await wait_for(lambda: not any(_running(pid) for pid in workers), timeout=30)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as fresh, fresh.get(gateway.url + "/healthz"):
            pass


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


async def _reload_a_broken_routing(gateway: Gateway) -> None:
    """routing.yaml made invalid YAML, then SIGHUP: until the supervisor says the workers
    refused it."""
    (gateway.config_dir / "routing.yaml").write_text("routing: [unclosed\n")
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reload refused; the workers keep" in gateway.logs())


async def test_a_rejected_reload_is_reported_as_rejected_not_as_reloaded(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    await _reload_a_broken_routing(gateway)
    assert "workers reloaded" not in gateway.logs()
    ready = [m for m in notify.drain() if m.get("READY") == "1"][-1]
    assert "last reload: rejected: " in ready["STATUS"] and "routing.yaml" in ready["STATUS"]


async def test_a_rejected_reload_is_one_error_line_that_lists_the_problems(
    start_gateway: StartGateway, notify: NotifySocket
):
    # Each worker and the supervisor had logged it as an error: N + 1 lines for one reload.
    gateway, notify = await _start(start_gateway, notify)
    await _reload_a_broken_routing(gateway)
    errors = [line for line in gateway.logs().splitlines() if line.split(" ")[1:2] == ["error"]]
    assert len(errors) == 1, errors
    assert "config reload rejected" in errors[0] and "routing.yaml" in errors[0]


async def test_a_rejected_reload_stays_in_the_status_when_a_worker_is_started_again(
    start_gateway: StartGateway, notify: NotifySocket
):
    # `systemctl status` had lost it at the next worker's death, the bad files still there.
    gateway, notify = await _start(start_gateway, notify)
    await _reload_a_broken_routing(gateway)
    notify.drain()
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    await wait_for(lambda: any("a worker is down" in m.get("STATUS", "") for m in notify.drain()),
                   timeout=10)
    down = [m["STATUS"] for m in notify.messages if "a worker is down" in m.get("STATUS", "")]
    assert "; last reload: rejected: routing.yaml" in down[-1]


async def test_reloads_while_a_worker_starts_again_do_not_end_it(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, _ = await _start(start_gateway, notify)
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    await wait_for(lambda: "worker exited; starting it again" in gateway.logs())
    # As config management's periodic `systemctl reload` may: SIGHUP's default action
    # ended the new process while it was still importing.
    for _ in range(60):
        gateway.signal(signal.SIGHUP)
        await asyncio.sleep(0.05)
    await wait_for(lambda: "worker started again" in gateway.logs(), timeout=15)
    assert "signal=SIGHUP" not in gateway.logs()
    assert "worker cannot start" not in gateway.logs()


async def test_a_good_reload_is_ok_though_a_worker_that_refused_the_last_one_died_meanwhile(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    routing = gateway.config_dir / "routing.yaml"
    good = routing.read_text()
    await _reload_a_broken_routing(gateway)
    routing.write_text(good)
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    gateway.signal(signal.SIGHUP)
    # The dead worker's last STATUS= spoke of the refused reload, not of this one.
    await wait_for(lambda: "workers reloaded" in gateway.logs(), timeout=10)
    assert gateway.logs().count("config reload refused") == 1


async def test_a_config_nested_too_deeply_is_rejected_and_every_worker_keeps_serving(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway, notify = await _start(start_gateway, notify)
    # PyYAML parses nesting by recursion: this raised RecursionError, not a config error,
    # which the supervisor reported as "ok" and then died of.
    (gateway.config_dir / "routing.yaml").write_text("[" * 5000 + "]" * 5000)
    gateway.signal(signal.SIGHUP)
    # Each worker parses 10,000 levels before it refuses them: slow on a loaded machine.
    await wait_for(lambda: "config reload refused; the workers keep" in gateway.logs(),
                   timeout=20)
    ready = [m for m in notify.drain() if m.get("READY") == "1"][-1]
    assert "nested too deeply" in ready["STATUS"]
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
    assert gateway.process is not None and gateway.process.poll() is None
    assert "Traceback" not in gateway.logs()


@pytest.mark.faults  # seconds of waiting: in `make test-faults`
async def test_a_stop_does_not_wait_behind_a_reload_that_a_stuck_worker_holds_up(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify, shutdown={"drain_timeout": 1})
    stuck = _worker_pids(gateway)[0]
    os.kill(stuck, signal.SIGSTOP)
    try:
        gateway.signal(signal.SIGHUP)
        await wait_for(lambda: any(m.get("RELOADING") == "1" for m in notify.drain()))
        gateway.signal(signal.SIGTERM)
        # The stuck worker is killed after its drain (1 s) and the 15 s after it; before,
        # the stop began only when the reload gave up on it, 30 s later.
        assert gateway.process is not None and gateway.process.wait(25) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stuck, signal.SIGKILL)


@pytest.mark.faults  # seconds of waiting: in `make test-faults`
async def test_the_supervisor_gives_the_workers_the_drain_timeout_a_reload_set(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    gateway, notify = await _start(start_gateway, notify, shutdown={"drain_timeout": 0})
    path = gateway.config_dir / "gateway.yaml"
    document = yaml.safe_load(path.read_text())
    document["shutdown"]["drain_timeout"] = 30
    path.write_text(yaml.safe_dump(document))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "workers reloaded" in gateway.logs())
    # A stream of 16 s: the started-with drain (0 s) and what a stop may take after it
    # (15 s) would cut it.
    fake.behave("m-alpha", content=" ".join("abcdefghijklmnopq"), chunk_delay=1.0)
    await _stop_with_a_stream_under_way(gateway)


async def test_the_watchdog_is_pinged_while_a_worker_waits_to_be_started_again(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await start_gateway(gateway={"workers": 2},
                                  env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    await wait_for(lambda: notify.drain())
    (gateway.config_dir / "routing.yaml").write_text("routing: [unclosed\n")  # on disk only
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    await wait_for(lambda: "worker cannot start; the others take" in gateway.logs(), timeout=15)
    # In its backoff it pings nothing: the one serving speaks for the service's loop.
    # Each attempt to start it vouches for it for two intervals (0.4 s): three pings or
    # so, which a supervisor waiting on it would send too; its backoff (2 s, then 5 s)
    # holds ten or more.
    await _pinged_between_attempts(gateway, notify, pings=6)


async def _pinged_between_attempts(
    gateway: Gateway, notify: NotifySocket, pings: int, timeout: float = 15.0
) -> None:
    """Until `pings` WATCHDOG=1 come while one worker runs and no attempt to start the
    other begins or ends: the workers' processes and the log's restarts stay the same."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen: tuple[tuple[int, ...], int] | None = None
    heard = 0
    while asyncio.get_running_loop().time() < deadline:
        # Drained before the look: what is drained was sent before what is seen.
        new = sum(m.get("WATCHDOG") == "1" for m in notify.drain())
        notify.messages.clear()
        now = (tuple(_worker_pids(gateway)), gateway.logs().count("worker exited"))
        heard = heard + new if now == seen and len(now[0]) == 1 else 0
        seen = now
        if heard >= pings:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {pings} pings between two attempts to start the worker in "
                         f"{timeout}s:\n{gateway.logs()}")


async def _healthz_fresh(gateway: Gateway) -> int:
    async with (  # a new connection each time, so the kernel picks a socket each time
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as fresh,
        fresh.get(gateway.url + "/healthz") as resp,
    ):
        return resp.status


async def test_a_worker_that_cannot_start_again_leaves_its_connections_to_the_other(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    (gateway.config_dir / "routing.yaml").write_text("routing: [unclosed\n")  # on disk only
    os.kill(_worker_pids(gateway)[0], signal.SIGKILL)
    await wait_for(lambda: "worker cannot start; the others take" in gateway.logs(), timeout=15)
    # Before, the dead worker's socket kept its share of new connections, unanswered.
    assert [await _healthz_fresh(gateway) for _ in range(20)] == [200] * 20
    statuses = [m["STATUS"] for m in notify.drain() if "STATUS" in m]
    assert any(s.startswith("1 of 2 workers on ") for s in statuses)


async def test_when_no_worker_can_start_again_the_log_does_not_say_others_take_over(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    (gateway.config_dir / "routing.yaml").write_text("routing: [unclosed\n")  # on disk only
    for pid in _worker_pids(gateway):
        os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: "worker cannot start; no worker serves meanwhile" in gateway.logs(),
                   timeout=15)


async def test_a_draining_supervisor_refuses_new_connections_at_once(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    gateway, notify = await _start(start_gateway, notify)
    fake.behave("m-alpha", content="a b c d e f g h", chunk_delay=0.4)
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)

        async def refused() -> bool:
            try:
                await _healthz_fresh(gateway)
            except aiohttp.ClientConnectorError:
                return True
            return False

        # Before, a new connection waited in a socket nobody accepted on until the end.
        deadline = asyncio.get_running_loop().time() + 2
        while not await refused():
            assert asyncio.get_running_loop().time() < deadline, "still taking connections"
            await asyncio.sleep(0.05)
        text = (await resp.read()).decode()
    assert text.rstrip().endswith("data: [DONE]")  # the stream in flight was not cut


async def test_a_reload_that_changes_the_number_of_workers_says_it_waits_for_a_restart(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    path = gateway.config_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"workers": 3}))
    gateway.signal(signal.SIGHUP)
    # Before, the reload was reported done and the change went unsaid.
    await wait_for(lambda: "workers changed; it takes effect on restart" in gateway.logs())
    assert "running=2" in gateway.logs() and len(_worker_pids(gateway)) == 2
    await wait_for(lambda: any("waiting for a restart: workers" in m.get("STATUS", "")
                               for m in notify.drain()))



async def test_a_reload_that_moves_a_port_the_command_line_pins_is_said_once_by_the_supervisor(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway, notify = await _start(start_gateway, notify)
    path = gateway.config_dir / "gateway.yaml"
    moved = {"listen": {"host": "127.0.0.1", "port": 4999}}
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | moved))
    gateway.signal(signal.SIGHUP)
    # The supervisor reads the files again once its workers have reloaded.
    await wait_for(lambda: "command line's address wins" in gateway.logs())
    said = [x for x in gateway.logs().splitlines() if "command line's address wins" in x]
    assert len(said) == 1 and "configured=127.0.0.1:4999" in said[0]
