"""Server-Sent Events through the gateway: no buffering, pass-through, clean ends."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests import one_gateway
from tests.e2e.test_alert_metrics import _sample, _scrape_fresh
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, ledger_rows, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
STREAM = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


async def _events(resp: aiohttp.ClientResponse) -> list[str]:
    text = (await resp.read()).decode()
    return [block for block in text.split("\n\n") if block]


async def test_the_first_chunk_reaches_the_client_before_the_upstream_finishes(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The upstream holds the rest of its stream until the client has the first
    # chunk: a gateway that buffered would never deliver it and the test would time out.
    gate = asyncio.Event()
    fake.behave("m-alpha", content="one two three", gate=gate)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout=5)
        assert b'"content": "one"' in first
        assert fake.finished == []
        gate.set()
        rest = (await resp.read()).decode()
    assert rest.rstrip().endswith("data: [DONE]")


async def test_usage_chunk_and_done_pass_through(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    body = STREAM | {"stream_options": {"include_usage": True}}
    async with client.post(gateway.url + "/v1/chat/completions", json=body,
                           headers=gateway.auth) as resp:
        events = await _events(resp)
    usage = json.loads(events[-2].removeprefix("data: "))
    assert usage["usage"]["completion_tokens"] == 6
    assert events[-1] == "data: [DONE]"


async def test_a_stream_that_did_not_ask_for_usage_is_counted_by_the_upstream_unseen(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The gateway asks for the usage chunk, so the ledger and the limits get the
    # upstream's count, and keeps the chunk from a client that did not ask for it.
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        events = await _events(resp)
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(chunk["choices"] for chunk in chunks) and events[-1] == "data: [DONE]"
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["usage_source"], row["prompt_tokens"], row["completion_tokens"]) == (
        "reported", 3, len(chunks) - 1)  # a chunk a word, then the one that stops


async def test_the_hidden_usage_chunk_leaves_events_split_across_reads_whole(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The stop chunk's data line arrives in one read, its blank line with the usage chunk
    # in the next: taking the usage chunk out must leave the stop chunk's event closed.
    fake.behave("m-alpha", script=(
        (0.0, b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
              b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
              b'"usage":null}\n'),
        (0.05, b'\ndata: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'),
        (0.05, b"data: [DONE]\n\n")))
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        events = await _events(resp)
    assert [e.count("data:") for e in events] == [1, 1, 1]
    assert '"finish_reason":"stop"' in events[1] and events[2] == "data: [DONE]"


async def test_litellm_s_usage_chunk_with_an_empty_delta_is_kept_from_a_client_that_did_not_ask(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # LiteLLM's proxy repeats the choice, with an empty delta, in its usage chunk.
    fake.behave("m-alpha", script=(
        (0.0, b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
              b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
              b'data: {"choices":[{"index":0,"delta":{}}],'
              b'"usage":{"completion_tokens":1,"prompt_tokens":3,"total_tokens":4}}\n\n'
              b"data: [DONE]\n\n"),))
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        events = await _events(resp)
    assert len(events) == 3 and all('"usage"' not in e for e in events)
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    assert ledger_rows(gateway)[0]["completion_tokens"] == 1


async def test_sse_comments_and_event_and_id_lines_pass_through_untouched(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", sse_extras=True)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        text = (await resp.read()).decode()
    assert text.startswith(': ping\n\nevent: meta\nid: 7\ndata: {"note": "hi"}\n\n')


async def test_an_upstream_dying_mid_stream_ends_the_stream_with_an_error_event(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="a b c d", reset_after_chunks=2)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
        events = await asyncio.wait_for(_events(resp), timeout=10)
    assert len(events) == 3
    assert events[-1].startswith("event: error\ndata: ")
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert error["error"]["type"] == "upstream_error"
    assert fake.seen_models() == ["m-alpha"]  # no failover once bytes reached the client


async def test_a_stream_that_ends_before_done_ends_with_an_error_event_and_no_success(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The upstream closed its body properly: without [DONE], the client would take the
    # words so far for the whole answer.
    fake.behave("m-alpha", content="a b c d", end_after_chunks=2)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        events = await asyncio.wait_for(_events(resp), timeout=10)
    assert len(events) == 3 and events[-1].startswith("event: error\ndata: ")
    error = json.loads(events[-1].split("data: ", 1)[1])["error"]
    assert error["message"] == "the upstream ended the stream before its final event"
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    assert (row["outcome"], row["usage_source"]) == (error["code"], "estimated")


def _choice(index: int, delta: str, finish: str | None = None) -> bytes:
    """A chat chunk of one of several choices, as a server that sends no [DONE] writes it."""
    choice = {"index": index, "delta": {"content": delta} if delta else {},
              "finish_reason": finish}
    return b"data: " + json.dumps({"object": "chat.completion.chunk",
                                   "choices": [choice]}).encode() + b"\n\n"


async def test_two_choices_without_done_are_whole_once_both_say_why_they_stopped(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", script=((0.0, _choice(0, "Hi") + _choice(1, "Yo")),
                                   (0.0, _choice(0, "", "stop") + _choice(1, "", "stop"))))
    async with client.post(gateway.url + "/v1/chat/completions", json={**STREAM, "n": 2},
                           headers=gateway.auth) as resp:
        events = await asyncio.wait_for(_events(resp), timeout=10)
    assert len(events) == 4 and not any(e.startswith("event: error") for e in events)


async def test_two_choices_cut_after_the_first_one_stopped_end_with_an_error_event(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # The first choice's finish_reason ends only that choice: the second was cut short.
    fake.behave("m-alpha", script=((0.0, _choice(0, "Hi") + _choice(1, "Yo")),
                                   (0.0, _choice(0, "", "stop"))))
    async with client.post(gateway.url + "/v1/chat/completions", json={**STREAM, "n": 2},
                           headers=gateway.auth) as resp:
        events = await asyncio.wait_for(_events(resp), timeout=10)
    assert len(events) == 4 and events[-1].startswith("event: error\ndata: ")
    assert "before its final event" in events[-1]


async def test_an_upstream_dying_mid_stream_is_a_warning_in_the_log(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="a b c d", reset_after_chunks=2)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        await asyncio.wait_for(_events(resp), timeout=10)
    # Before, only the access line (info) said so: `journalctl -p warning` missed it.
    await wait_for(lambda: "upstream failed mid-response" in gateway.logs())
    line = next(x for x in gateway.logs().splitlines() if "upstream failed mid-response" in x)
    assert "warning" in line and "model=alpha" in line


async def test_a_half_sent_line_is_never_shown_before_the_error_event(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="a b c", garbage_after_chunks=1)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        events = await asyncio.wait_for(_events(resp), timeout=10)
    assert all("cont\n" not in e and not e.endswith("cont") for e in events)
    assert events[-1].startswith("event: error")
    assert len(events) == 2


async def test_an_upstream_silent_after_headers_ends_with_an_idle_timeout_event(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="a b c", hang_after_chunks=1)
    async with client.post(gateway.url + "/v1/chat/completions", json=STREAM,
                           headers=gateway.auth) as resp:
        events = await asyncio.wait_for(_events(resp), timeout=15)
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert error["error"]["code"] == "upstream_timeout"
    assert "sent nothing for 5s" in error["error"]["message"]


async def _leave_after_the_first_event(gateway: Gateway) -> None:
    """A stream's client that closes its connection once the first event came."""
    async with aiohttp.ClientSession() as session:
        resp = await session.post(gateway.url + "/v1/chat/completions", json=STREAM,
                                  headers=gateway.auth)
        await resp.content.readuntil(b"\n\n")
        resp.close()


async def test_a_client_leaving_mid_stream_cancels_the_upstream_request(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", content="w " * 200, chunk_delay=0.05)
    await _leave_after_the_first_event(gateway)
    await wait_for(lambda: fake.cancelled == ["m-alpha"])
    await wait_for(lambda: "outcome=client_gone" in gateway.logs())


async def test_a_client_leaving_before_the_headers_cancels_the_upstream_request(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", header_delay=30)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.post(
            gateway.url + "/v1/chat/completions", json=STREAM, headers=gateway.auth))
        await wait_for(lambda: fake.requests)
        task.cancel()
    await wait_for(lambda: fake.cancelled == ["m-alpha"])


async def test_a_non_streaming_client_leaving_early_cancels_the_upstream_request(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", header_delay=30)
    body = {"messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.post(
            gateway.url + "/v1/chat/completions", json=body, headers=gateway.auth))
        await wait_for(lambda: fake.requests)
        task.cancel()
    await wait_for(lambda: fake.cancelled == ["m-alpha"])


async def test_a_client_that_leaves_at_done_with_the_whole_answer_is_no_client_gone(
    gateway: Gateway, fake: FakeUpstream
):
    # The sync OpenAI SDK closes the response at [DONE], before the body's end, which an
    # upstream may send a moment later.
    chunk = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},' \
            b'"finish_reason":"stop"}]}\n\n'
    fake.behave("m-alpha", script=((0.0, chunk + b"data: [DONE]\n\n"), (0.5, b"")))
    async with aiohttp.ClientSession() as session:
        resp = await session.post(gateway.url + "/v1/chat/completions", json=STREAM,
                                  headers=gateway.auth)
        await resp.content.readuntil(b"data: [DONE]\n\n")
        resp.close()
    await wait_for(lambda: "POST /v1/chat/completions status=200" in gateway.logs())
    (line,) = [line for line in gateway.logs().splitlines()
               if "POST /v1/chat/completions status=200" in line]
    assert " outcome=ok " in line


async def _active_streams(gateway: Gateway) -> float | None:
    return _sample(await _scrape_fresh(gateway, "/metrics"), "hxgw_active_streams")


async def test_a_stream_its_client_left_is_no_longer_counted_as_active(
    own_gateway: Gateway, fake: FakeUpstream
):
    # The gauge, and the status page's count, had kept every stream a client cut short.
    fake.behave("m-alpha", content="w " * 400, chunk_delay=0.01)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(own_gateway.url + "/v1/chat/completions", json=STREAM,
                                  headers=own_gateway.auth)
        await resp.content.readuntil(b"\n\n")
        assert await _active_streams(own_gateway) == 1
        resp.close()
    for _ in range(100):
        if await _active_streams(own_gateway) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the stream its client left still counts as active")


async def _alpha(gateway: Gateway) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(
        gateway.url + "/status.json", headers=gateway.auth
    ) as resp:
        status = await resp.json()
    (alpha,) = [m for m in status["models"] if m["name"] == "alpha"]
    return alpha


async def test_a_stream_its_client_left_says_nothing_of_its_model_s_latency(
    own_gateway: Gateway, fake: FakeUpstream
):
    # Counted as a success, a stream cut after its first event made the model's whole
    # answers look as quick as that, for the latency strategy to prefer it.
    fake.behave("m-alpha", content="w " * 400, chunk_delay=0.01)
    await _leave_after_the_first_event(own_gateway)
    # Its access line is written once forward has told the model's health how it ended.
    await wait_for(lambda: "outcome=client_gone" in own_gateway.logs(), timeout=10)
    alpha = await _alpha(own_gateway)
    assert (alpha["inflight"], alpha["ewma_latency_ms"], alpha["error_rate"]) == (0, None, 0)
