"""The usage ledger behind the real gateway: a row per request, read back by the
installed `hxgw usage`; a stream the client cut is billed and says so; and with
PostgreSQL stopped for 10 s mid-load, no row is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, HXGW, Gateway, ledger_rows, wait_for
from tests.postgres import Postgres, own_postgres  # noqa: F401 -- a fixture

upstream = one_gateway.upstream
PRICED = [dict(m, price={"input_per_mtok": 1, "output_per_mtok": 2}) for m in DEFAULT_MODELS]
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
async def module_priced(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[Gateway]:
    async with one_gateway.serving_shared(tmp_path_factory.mktemp("priced"), module_upstream[1],
                                          models=PRICED) as shared:
        yield shared


@pytest.fixture
def priced(module_priced: Gateway, upstream: tuple[FakeUpstream, str]) -> Gateway:
    """A gateway with PRICED models that the module's tests share: those that read the
    rows of their own requests alone (`ledger_rows`), not totals or its log."""
    module_priced.begin_test()
    return module_priced


def _state_dir(gateway: Gateway) -> str:
    return gateway.env()["HX_STATE_DIR"]


async def _chat(client: aiohttp.ClientSession, gateway: Gateway, **extra: Any) -> int:
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, **extra},
                           headers=gateway.auth) as resp:
        await resp.read()
        return resp.status


async def test_every_request_leaves_one_row_that_hxgw_usage_reads_back(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(models=PRICED)
    fake.behave("m-beta", status=400)  # a request's own fault: still one row
    for _ in range(3):
        assert await _chat(client, gateway) == 200
    assert await _chat(client, gateway, model="beta") == 400
    await wait_for(lambda: len(ledger_rows(gateway)) == 4, timeout=10)
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        assert 'hxgw_ledger_rows_total{result="written"} 4.0' in await resp.text()
    env = {**os.environ, "HX_STATE_DIR": _state_dir(gateway)}
    out = subprocess.run([HXGW, "usage", "--by", "key", "--format", "json",
                          "--config-dir", str(gateway.config_dir)],
                         env=env, capture_output=True, text=True, check=True)
    (master,) = json.loads(out.stdout)["rows"]
    assert master["key"] == "master" and master["requests"] == 4 and master["errors"] == 1
    # The fake reports 3 prompt tokens and one a word of its answer: $1 and $2 per Mtok.
    assert master["prompt_tokens"] == 9 and master["completion_tokens"] == 18
    assert abs(master["cost"] - (9 * 1 + 18 * 2) / 1e6) < 1e-12


async def test_each_row_names_the_end_user_the_request_said_and_hxgw_usage_totals_by_it(
    gateway: Gateway, client: aiohttp.ClientSession
):
    assert await _chat(client, gateway, user="u-openai") == 200
    assert await _chat(client, gateway, safety_identifier="u-safety") == 200
    assert await _chat(client, gateway, user="u-" + "x" * 300) == 200  # cut, not refused
    assert await _chat(client, gateway) == 200
    anthropic = {"model": "chat", "max_tokens": 16, "metadata": {"user_id": "u-anthropic"},
                 "messages": [{"role": "user", "content": "hi"}]}
    async with client.post(gateway.url + "/v1/messages", json=anthropic,
                           headers={"x-api-key": gateway.key}) as resp:
        assert resp.status == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 5, timeout=10)
    env = {**os.environ, "HX_STATE_DIR": _state_dir(gateway)}
    out = subprocess.run([HXGW, "usage", "--by", "user", "--format", "json",
                          "--config-dir", str(gateway.config_dir)],
                         env=env, capture_output=True, text=True, check=True)
    users = {line["user"]: line["requests"] for line in json.loads(out.stdout)["rows"]}
    assert users == {None: 1, "u-anthropic": 1, "u-openai": 1, "u-safety": 1,
                     "u-" + "x" * 254: 1}


async def test_the_state_directory_the_gateway_makes_is_its_own_alone(
    start_gateway: StartGateway,
):
    gateway = await start_gateway()
    state = Path(_state_dir(gateway))
    assert state.is_dir() and stat.S_IMODE(state.stat().st_mode) == 0o700


async def test_a_stream_the_client_cut_is_billed_as_estimated_and_disconnected(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="w " * 200, chunk_delay=0.01)
    gateway = priced
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True},
                           headers=gateway.auth) as stream:
        for _ in range(5):
            await stream.content.readuntil(b"\n\n")
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert row["disconnected"] == 1 and row["stream"] == 1
    assert row["usage_source"] == "estimated"
    assert row["completion_tokens"] >= 5 and row["cost"] > 0


async def test_a_stream_the_upstream_broke_off_is_a_200_row_that_counts_as_an_error(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="one two three four", reset_after_chunks=2)
    gateway = await start_gateway(models=PRICED)
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True},
                           headers=gateway.auth) as stream:
        assert b"event: error" in await stream.read()
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["status"], row["disconnected"], row["outcome"]) == (200, 0, "upstream_unavailable")
    env = {**os.environ, "HX_STATE_DIR": _state_dir(gateway)}
    out = subprocess.run([HXGW, "usage", "--format", "json",
                          "--config-dir", str(gateway.config_dir)],
                         env=env, capture_output=True, text=True, check=True)
    (master,) = json.loads(out.stdout)["rows"]
    assert (master["requests"], master["errors"]) == (1, 1)


async def test_a_plain_answer_the_client_cut_is_billed_as_much_as_the_request_asked_for(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    start = b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":' \
            b'{"role":"assistant","content":"' + b"w " * 2000
    end = b'"}}],"usage":{"prompt_tokens":9,"completion_tokens":900,"total_tokens":909}}'
    fake.behave("m-alpha", script=((0, start), (3, end)))
    gateway = priced
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**CHAT, "max_tokens": 700}) as resp:
        await resp.content.readexactly(1000)  # then it leaves
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["disconnected"], row["usage_source"]) == (1, "estimated")
    assert row["completion_tokens"] == 700  # not 0: the model wrote it whole before it went


async def test_a_usage_several_chunks_before_a_plain_body_s_end_is_read(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    start = (b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":'
             b'{"role":"assistant","content":"hi"}}],'
             b'"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10},"x":"')
    fake.behave("m-alpha", script=((0, start), (0.05, b"f" * 1500), (0.05, b"f" * 1500),
                                   (0.05, b'"}')))
    gateway = priced
    assert await _chat(client, gateway) == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (
        9, 1, "reported")


async def test_a_stream_the_client_left_before_any_event_is_billed_no_completion(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # A lone candidate's: with one to fail over to, a comment waits for the first event.
    fake.behave("m-alpha", script=((0, b": PROCESSING\n\n"), (3, b"data: [DONE]\n\n")))
    gateway = priced
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**CHAT, "model": "alpha", "stream": True, "max_tokens": 700}
                           ) as resp:
        await resp.content.readuntil(b"\n\n")  # the comment, then it leaves
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["disconnected"], row["stream"], row["completion_tokens"]) == (1, 1, 0)


async def _gone_before_the_first_byte(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
) -> dict[str, Any]:
    """The row of a chat through `gateway` its client left half a second in, 3 s before
    the upstream's answer."""
    fake.behave("m-alpha", header_delay=3)
    with contextlib.suppress(TimeoutError):
        async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                               headers=gateway.auth, timeout=aiohttp.ClientTimeout(total=0.5)):
            pass
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    return row


async def test_a_client_gone_before_the_first_byte_is_recorded_as_disconnected(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    row = await _gone_before_the_first_byte(priced, client, fake)
    assert (row["status"], row["disconnected"]) == (499, 1)
    # The upstream had read its prompt: that is billed, estimated, and nothing more.
    prompt = len(json.dumps(CHAT)) // 4 + 1  # as aiohttp sent it: bytes / 4
    assert (row["usage_source"], row["prompt_tokens"], row["completion_tokens"]) == (
        "estimated", prompt, 0)
    assert row["cost"] > 0


async def test_an_anthropic_stream_the_client_cut_counts_what_was_relayed_not_its_start(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # message_start reports the input tokens and 1 output token; the final count would
    # come in message_delta, which a cut stream never gets.
    fake.behave("m-alpha", content="w " * 200, chunk_delay=0.01)
    gateway = priced
    body = {**CHAT, "max_tokens": 500, "stream": True}
    async with client.post(gateway.url + "/v1/messages", json=body,
                           headers=gateway.auth) as stream:
        for _ in range(20):
            await stream.content.readuntil(b"\n\n")
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert row["disconnected"] == 1 and row["usage_source"] == "estimated"
    assert row["completion_tokens"] >= 20


async def test_a_request_refused_before_auth_leaves_no_row(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers={"Authorization": "Bearer sk-wrong"}) as resp:
        assert resp.status == 401
    assert await _chat(client, gateway) == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    await asyncio.sleep(1.5)  # a batch interval and more: nothing else arrives
    assert [r["status"] for r in ledger_rows(gateway)] == [200]


@pytest.mark.faults  # seconds of waiting: in `make test-faults`
async def test_postgresql_stopped_for_ten_seconds_mid_load_loses_no_row(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    own_postgres: Postgres,  # noqa: F811
):
    url = own_postgres.new_database()
    gateway = await start_gateway(env={"DATABASE_URL": url})
    sent = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal sent
        while not stop.is_set():
            assert await _chat(client, gateway) == 200
            sent += 1
            await asyncio.sleep(0.02)

    loader = asyncio.create_task(load())
    await asyncio.sleep(2)
    own_postgres.stop(mode="immediate")
    stopped_at = time.monotonic()
    await asyncio.sleep(10)
    own_postgres.start()
    await asyncio.sleep(2)
    stop.set()
    await loader
    assert time.monotonic() - stopped_at >= 10

    def count() -> int:
        with psycopg.connect(url) as connection:
            rows = connection.execute(
                "SELECT count(*), count(DISTINCT request_id) FROM usage_ledger").fetchone()
        assert rows is not None and rows[0] == rows[1]  # none twice
        return int(rows[0])

    deadline = time.monotonic() + 30
    while count() < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert count() == sent


def _unreadable_directory(path: Path) -> None:
    """A directory the gateway's user may not read: mode 000, or, for root, whom no mode
    stops, a link to itself (ELOOP)."""
    if os.getuid() == 0:
        path.symlink_to(path.name)
    else:
        path.mkdir()
        path.chmod(0)


async def _serves_without_a_spool(
    start_gateway: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(models=PRICED)
    assert await _chat(client, gateway) == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    said = [line for line in gateway.logs().splitlines() if "has no spool" in line]
    assert len(said) == 1 and "why=" in said[0]
    assert "Traceback" not in gateway.logs()


async def test_a_spool_path_that_is_a_file_leaves_the_ledger_without_a_spool_not_the_gateway_down(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    (tmp_path / "state-config0").mkdir(mode=0o700)
    (tmp_path / "state-config0" / "spool").write_text("")
    await _serves_without_a_spool(start_gateway, client)


async def test_an_unreadable_spool_directory_leaves_the_ledger_without_a_spool_not_the_gateway_down(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    (tmp_path / "state-config0").mkdir(mode=0o700)
    _unreadable_directory(tmp_path / "state-config0" / "spool")
    await _serves_without_a_spool(start_gateway, client)


async def test_a_client_gone_before_the_first_byte_is_filed_under_the_model_called_not_an_error(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Its own gateway: `hxgw usage` totals every row.
    gateway = await start_gateway(models=PRICED)
    row = await _gone_before_the_first_byte(gateway, client, fake)
    assert (row["status"], row["outcome"], row["model"]) == (499, "client_gone", "alpha")
    env = {**os.environ, "HX_STATE_DIR": _state_dir(gateway)}
    out = subprocess.run([HXGW, "usage", "--by", "model", "--format", "json",
                          "--config-dir", str(gateway.config_dir)],
                         env=env, capture_output=True, text=True, check=True)
    (alpha,) = json.loads(out.stdout)["rows"]
    assert (alpha["model"], alpha["requests"], alpha["errors"]) == ("alpha", 1, 0)
    assert alpha["cost"] == row["cost"] > 0
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        charted = (await resp.json())["usage"]["windows"]["hour"]["models"]["alpha"]
    assert (sum(charted["requests"]), sum(charted["errors"])) == (1, 0)


async def test_a_request_whose_model_ran_out_of_time_bills_its_prompt_at_that_model(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-gamma", header_delay=3)
    gateway = await start_gateway(models=PRICED, gateway={"timeouts": {"answer": 0.5}})
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**CHAT, "model": "solo"}) as resp:
        assert resp.status == 504
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["outcome"], row["model"], row["usage_source"]) == (
        "upstream_timeout", "gamma", "estimated")
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] == 0 and row["cost"] > 0
    assert "model=gamma" in gateway.logs().split("POST /v1/chat/completions status=504")[1]


async def test_a_request_no_upstream_would_take_a_connection_for_bills_nothing(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # A listener whose queue is full: its connections time out, and the prompt never left.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:  # not waited for: the queue takes one, then no more
                filler.setblocking(False)
                filler.connect_ex(full.getsockname())
            gateway = await start_gateway(
                models=PRICED, upstream_url=f"http://127.0.0.1:{full.getsockname()[1]}",
                routing={"routing": {"default_group": "solo", "groups": {"solo": ["gamma"]}}},
                gateway={"timeouts": {"connect": 0.3, "answer": 5}}, wait=False)
            await wait_for(lambda: " info listening " in gateway.logs())
            async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                                   json={**CHAT, "model": "solo"}) as resp:
                assert resp.status == 504
            await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
        finally:
            for filler in fillers:
                filler.close()
    (row,) = ledger_rows(gateway)
    assert (row["model"], row["usage_source"], row["cost"]) == (None, "none", 0)


async def test_a_request_a_stop_cut_before_its_answer_bills_its_prompt_at_the_model_called(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", header_delay=10)
    gateway = await start_gateway(models=PRICED, gateway={"shutdown": {"drain_timeout": 0.5}})
    waiting = asyncio.ensure_future(client.post(
        gateway.url + "/v1/chat/completions", json=CHAT, headers=gateway.auth))
    await wait_for(lambda: fake.seen_models() == ["m-alpha"])
    gateway.signal(signal.SIGTERM)
    async with await waiting as resp:
        assert resp.status == 503
    assert gateway.process is not None and gateway.process.wait(10) == 0
    (row,) = ledger_rows(gateway)
    assert (row["outcome"], row["model"], row["usage_source"]) == (
        "cancelled", "alpha", "estimated")
    assert row["prompt_tokens"] > 0 and row["cost"] > 0


async def test_a_stream_broken_off_after_its_final_usage_chunk_is_billed_that_usage(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # OpenAI's usage chunk comes once every choice has finished: its count is the whole
    # answer's, whatever happens to the `[DONE]` after it.
    def chunk(delta: dict[str, str], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m-alpha",
                "choices": [choice], **extra}
        return b"data: " + json.dumps(body).encode() + b"\n\n"
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m-alpha",
             "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                      "total_tokens": 5}}
    events = (chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hi"})
              + chunk({"content": " you"}) + chunk({}, "stop")
              + b"data: " + json.dumps(usage).encode() + b"\n\n")
    fake.behave("m-alpha", script=((0, events),), script_end="reset")
    gateway = priced
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**CHAT, "model": "alpha", "stream": True}) as stream:
        await stream.read()
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["usage_source"], row["prompt_tokens"], row["completion_tokens"]) == (
        "reported", 3, 2)


async def test_an_anthropic_stream_cut_after_a_start_that_counted_no_prompt_bills_its_prompt(
    priced: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # LiteLLM's Messages API for a provider other than Anthropic (and other bridges from
    # OpenAI's chat) open with a usage of 0 input tokens: the real count comes at the end.
    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()
    start = event("message_start", {"message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m-alpha",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0}}})
    text = (event("content_block_start", {"index": 0, "content_block": {"type": "text",
                                                                         "text": ""}})
            + event("content_block_delta", {"index": 0, "delta": {"type": "text_delta",
                                                                   "text": "Hi"}}))
    fake.behave("m-alpha", script=((0, start + text), (5, b"")))
    gateway = priced
    body = {**CHAT, "model": "alpha", "max_tokens": 500, "stream": True}
    async with client.post(gateway.url + "/v1/messages", json=body,
                           headers=gateway.auth) as stream:
        for _ in range(3):
            await stream.content.readuntil(b"\n\n")
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["disconnected"], row["usage_source"]) == (1, "estimated")
    assert row["prompt_tokens"] == len(json.dumps(body)) // 4 + 1
