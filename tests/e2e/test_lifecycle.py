"""The daemon's lifecycle, with the test playing systemd's part on a real notify socket."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, NotifySocket, ledger_rows, stream_under_way, wait_for

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def _start(start_gateway: StartGateway, notify: NotifySocket, **env: str) -> Gateway:
    return await start_gateway(env={"NOTIFY_SOCKET": notify.path, **env})


def _rewrite_routing(gateway: Gateway, groups: dict[str, list[str]], default: str = "chat") -> None:
    doc = {"routing": {"strategy": "failover", "default_group": default, "groups": groups}}
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(doc))


async def test_ready_is_sent_once_listening_with_a_status(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await _start(start_gateway, notify)
    await wait_for(lambda: notify.drain())
    first = notify.messages[0]
    assert first["READY"] == "1"
    assert f"serving on 127.0.0.1:{gateway.port}" in first["STATUS"]
    assert "config generation 1" in first["STATUS"]


async def test_sighup_reloads_with_reloading_monotonic_usec_then_ready(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway = await _start(start_gateway, notify)
    await wait_for(lambda: notify.drain())
    _rewrite_routing(gateway, {"chat": ["beta"], "solo": ["gamma"]})
    before = time.monotonic_ns() // 1000
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: len(notify.drain()) >= 3)
    reloading, ready = notify.messages[1], notify.messages[2]
    assert reloading["RELOADING"] == "1"
    assert int(reloading["MONOTONIC_USEC"]) >= before
    assert ready["READY"] == "1" and "config generation 2" in ready["STATUS"]
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.headers["X-HX-Model"] == "beta"


async def test_a_broken_config_on_reload_is_rejected_and_the_old_one_keeps_serving(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway = await _start(start_gateway, notify)
    await wait_for(lambda: notify.drain())
    _rewrite_routing(gateway, {"chat": ["alpha", "llm03"]})
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: len(notify.drain()) >= 3)
    assert notify.messages[2]["READY"] == "1"
    assert "rejected: routing.yaml: routing.groups.chat[1]: unknown model 'llm03'" in \
        notify.messages[2]["STATUS"]
    assert "config generation 1" in notify.messages[2]["STATUS"]
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 200 and resp.headers["X-HX-Model"] == "alpha"
    assert "config reload rejected" in gateway.logs()
    assert gateway.process is not None and gateway.process.poll() is None


async def test_a_reload_rejected_for_several_problems_says_the_first_and_how_many_more(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway = await _start(start_gateway, notify)
    await wait_for(lambda: notify.drain())
    _rewrite_routing(gateway, {"chat": ["alpha", "llm03", "llm04"]})
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: len(notify.drain()) >= 3)
    said = "rejected: routing.yaml: routing.groups.chat[1]: unknown model 'llm03'"
    assert f"{said} (and 1 more)" in notify.messages[2]["STATUS"]
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        reload = (await resp.json())["last_reload"]
    assert reload["message"].endswith("unknown model 'llm03' (and 1 more)")
    assert "llm04" in gateway.logs()  # the log says every one


async def test_a_stop_does_not_wait_behind_a_reload_stuck_reading_a_file(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await _start(start_gateway, notify)
    await wait_for(lambda: notify.drain())
    registry = gateway.config_dir / "model_registry.yaml"
    registry.unlink()
    os.mkfifo(registry)  # as a hung network mount: its read never returns
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: any(m.get("RELOADING") == "1" for m in notify.drain()))
    gateway.signal(signal.SIGTERM)
    assert gateway.process is not None and gateway.process.wait(10) == 0
    assert any(m.get("STOPPING") == "1" for m in notify.drain())


async def test_a_burst_of_sighups_collapses_into_few_reloads(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await _start(start_gateway, notify)
    await wait_for(lambda: notify.drain())
    for _ in range(20):
        gateway.signal(signal.SIGHUP)
    # Counted once the gateway is ready again and has stayed quiet: a fixed sleep either
    # ended before a busy machine began the first reload or counted one still coming.
    await wait_for(lambda: notify.drain()[-1].get("READY") == "1"
                   and any("RELOADING" in m for m in notify.messages), timeout=20)
    await _quiet(notify, 1.0)
    reloads = [m for m in notify.messages if "RELOADING" in m]
    # Without the collapse, 20. A reload takes a few ms, and on a busy machine the burst
    # can be spread over several of them (CI once counted 4 in 11 ms).
    assert 1 <= len(reloads) <= 10


async def _quiet(notify: NotifySocket, seconds: float) -> None:
    """Return once `seconds` pass without a notify message (within 20 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = len(notify.drain())
        await asyncio.sleep(seconds)
        if len(notify.drain()) == seen and notify.messages[-1].get("READY") == "1":
            return
    raise AssertionError("the gateway kept sending notify messages")


async def test_a_request_in_flight_finishes_on_the_config_it_started_with(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    gateway = await _start(start_gateway, notify)
    gate = asyncio.Event()
    fake.behave("m-alpha", content="a b c", gate=gate)
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        _rewrite_routing(gateway, {"chat": ["beta"]})
        gateway.signal(signal.SIGHUP)
        await wait_for(lambda: "config reloaded" in gateway.logs())
        gate.set()
        text = (await resp.read()).decode()
        assert resp.headers["X-HX-Model"] == "alpha"
        assert text.rstrip().endswith("data: [DONE]")
        async with session.post(gateway.url + "/v1/chat/completions", json=CHAT,
                                headers=gateway.auth) as after:
            assert after.headers["X-HX-Model"] == "beta"


async def test_reloads_under_concurrent_load_fail_no_request(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway = await _start(start_gateway, notify)
    failures: list[int] = []

    async def load() -> None:
        for _ in range(40):
            async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                                   headers=gateway.auth) as resp:
                await resp.read()
                if resp.status != 200:
                    failures.append(resp.status)

    async def reloads() -> None:
        for i in range(10):
            _rewrite_routing(gateway, {"chat": ["alpha", "beta"] if i % 2 else ["beta"]})
            gateway.signal(signal.SIGHUP)
            await asyncio.sleep(0.05)

    await asyncio.gather(*(load() for _ in range(8)), reloads())
    assert failures == []
    assert "config reloaded" in gateway.logs()


async def test_sigterm_sends_stopping_drains_a_live_stream_and_exits_0(
    start_gateway: StartGateway, notify: NotifySocket, fake: FakeUpstream
):
    gateway = await _start(start_gateway, notify)
    fake.behave("m-alpha", content="a b c d e f", chunk_delay=0.2)
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)
        await wait_for(lambda: any("STOPPING" in m for m in notify.drain()))
        text = (await resp.read()).decode()
    assert text.rstrip().endswith("data: [DONE]")
    assert gateway.process is not None
    assert gateway.process.wait(10) == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(gateway.url + "/healthz")


async def test_a_connection_opened_during_the_drain_is_refused(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"shutdown": {"drain_timeout": 60}})
    fake.behave("m-alpha", content="a " * 100, chunk_delay=0.2)  # 20 s of stream

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", gateway.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)
        await wait_for(refused)
        assert not resp.content.at_eof()  # the drain goes on for the stream it holds
        gateway.signal(signal.SIGTERM)
        resp.close()


async def test_an_idle_keep_alive_connection_is_closed_as_the_drain_begins(
    start_gateway: StartGateway, fake: FakeUpstream
):
    # Left open, it took the next request its client's pool sent on it, and never answered it.
    gateway = await start_gateway(gateway={"shutdown": {"drain_timeout": 60}})
    fake.behave("m-alpha", content="a " * 100, chunk_delay=0.2)  # 20 s of stream
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    await reader.readexactly(length)  # answered: the connection is idle now
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert not resp.content.at_eof()
        gateway.signal(signal.SIGTERM)
        resp.close()
    writer.close()


async def test_a_stop_waits_out_the_drain_timeout_the_last_reload_set(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await _start(start_gateway, notify)
    path = gateway.config_dir / "gateway.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["shutdown"] = {"drain_timeout": 7}
    path.write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    gateway.signal(signal.SIGTERM)
    await wait_for(lambda: any("STOPPING" in m for m in notify.drain()))
    stopping = next(m for m in notify.messages if "STOPPING" in m)
    assert "(up to 7s)" in stopping["STATUS"]


async def test_a_stream_outliving_the_drain_timeout_ends_with_an_error_event(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"shutdown": {"drain_timeout": 0.5}})
    fake.behave("m-alpha", content="a " * 100, chunk_delay=0.2)
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)
        text = (await asyncio.wait_for(resp.read(), 10)).decode()
    assert "event: error" in text and "the gateway stopped this stream" in text
    assert gateway.process is not None and gateway.process.wait(10) == 0


async def test_a_second_sigterm_ends_the_drain_now_and_keeps_the_records(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"shutdown": {"drain_timeout": 60}})
    fake.behave("m-alpha", content="a " * 100, chunk_delay=0.2)
    async with aiohttp.ClientSession() as session:
        resp = await stream_under_way(session, gateway)
        gateway.signal(signal.SIGTERM)
        await wait_for(lambda: "stopping" in gateway.logs())
        gateway.signal(signal.SIGTERM)
        text = (await asyncio.wait_for(resp.read(), 5)).decode()
    assert gateway.process is not None and gateway.process.wait(5) == 0
    assert "the gateway stopped this stream" in text
    # Before, it left at once: no access line for the stream it cut, and no usage row.
    logs = gateway.logs()
    assert "second stop signal; cancelling requests cancelled=1" in logs
    assert "still running after their cancel" not in logs  # it heard the last one go
    assert re.search(r"POST /v1/chat/completions status=200 .*outcome=cancelled", logs)
    assert [(row["stream"], row["usage_source"]) for row in ledger_rows(gateway)] == [
        (1, "estimated")]


async def test_a_plain_answer_cut_by_the_drain_timeout_is_filed_as_cancelled_not_client_gone(
    start_gateway: StartGateway, fake: FakeUpstream
):
    # Its client was still there: the gateway cut it, as it does a stream.
    gateway = await start_gateway(gateway={"shutdown": {"drain_timeout": 1}})
    fake.behave("m-alpha", content_length=True,
                script=((0.0, b'{"id": "chatcmpl-1", "choices": ['), (30.0, b"]}")))
    async with aiohttp.ClientSession() as session, session.post(
        gateway.url + "/v1/chat/completions", json=CHAT, headers=gateway.auth
    ) as resp:
        assert resp.status == 200
        gateway.signal(signal.SIGTERM)
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), 10)
    assert gateway.process is not None and gateway.process.wait(10) == 0
    assert [(r["status"], r["outcome"], r["disconnected"]) for r in ledger_rows(gateway)] == [
        (200, "cancelled", 0)]


async def test_watchdog_pings_come_at_half_the_interval(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await _start(start_gateway, notify, WATCHDOG_USEC="400000")
    assert gateway.process is not None
    notify.drain()
    notify.messages.clear()
    since = time.monotonic()

    def pings() -> int:
        return sum(m.get("WATCHDOG") == "1" for m in notify.drain())

    await wait_for(lambda: pings() >= 3, timeout=10)
    # One every 0.2 s at most (half of 0.4 s), however long the wait took: a slow
    # machine only loosens the bound.
    assert pings() <= (time.monotonic() - since) / 0.2 + 2


async def test_the_capacity_the_descriptor_limit_allows_is_logged_once_at_start(
    start_gateway: StartGateway,
):
    gateway = await start_gateway()
    lines = [line for line in gateway.logs().splitlines() if " capacity " in line]
    assert len(lines) == 1
    descriptors = int(re.search(r"descriptors=(\d+)", lines[0])[1])  # type: ignore[index]
    streams = max(64, (descriptors - 256 - 1000) // 2)  # the default queue holds 1000
    assert f"streams={streams}" in lines[0]
    assert f"caps=default:{streams}" in lines[0]
    assert "queues=default:1000" in lines[0]


async def test_a_sighup_while_starting_kills_nothing_and_reloads_once_serving(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(wait=False)
    # The config is read and the stores open: the daemon does not listen yet.
    await wait_for(lambda: "usage ledger" in gateway.logs(), timeout=30, interval=0.002)
    _rewrite_routing(gateway, {"chat": ["beta"]})
    gateway.signal(signal.SIGHUP)
    await gateway.wait_ready()
    await wait_for(lambda: "config reloaded" in gateway.logs(), timeout=30)
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.headers["X-HX-Model"] == "beta"


def _catches_sighup(pid: int) -> bool:
    """Whether the process has a handler for SIGHUP (its `SigCgt` mask, /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)[1], 16)  # type: ignore[index]
    return bool(caught & (1 << (signal.SIGHUP - 1)))


def _has_loaded(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


async def test_hxgw_serve_catches_sighup_before_its_imports_not_after_them(
    start_gateway: StartGateway,
):
    # Its imports take most of a second: a SIGHUP before its handler ended it (exit 129,
    # which systemd counts as a clean stop and does not restart).
    gateway = await start_gateway(wait=False)
    assert gateway.process is not None
    pid = gateway.process.pid
    await wait_for(lambda: _catches_sighup(pid), timeout=30, interval=0.002)
    assert not _has_loaded(pid, "aiohttp")  # caught before aiohttp was even loaded
    gateway.signal(signal.SIGHUP)
    await gateway.wait_ready()
    await wait_for(lambda: "config reloaded" in gateway.logs(), timeout=30)


async def test_a_request_with_no_answer_yet_at_the_drain_timeout_gets_a_503_not_a_cut(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"shutdown": {"drain_timeout": 1}})
    fake.behave("m-alpha", header_delay=30)  # an upstream that has not answered yet
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(session.post(
            gateway.url + "/v1/chat/completions", json=body, headers=gateway.auth))
        await wait_for(lambda: len(fake.requests) == 1)
        gateway.signal(signal.SIGTERM)
        resp = await asyncio.wait_for(pending, 10)
        answer = await resp.json()
    assert (resp.status, resp.headers["Retry-After"]) == (503, "1")
    assert answer["error"]["message"] == "the gateway is stopping: try again"
    assert gateway.process is not None and gateway.process.wait(10) == 0
    assert [(r["status"], r["outcome"], r["disconnected"]) for r in ledger_rows(gateway)] == [
        (503, "cancelled", 0)]
