"""Upstream faults, each against streamed and plain requests.

Expected everywhere: failover while nothing has reached the client, a clean SSE error
event (or, for a plain body, a cut connection) after that, no hang, no leaked upstream
connection, no duplicated content. Every test adds its rows to the fault table.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.harness import (
    CHAT,
    MODES,
    Blackhole,
    Outcome,
    PeakRss,
    Row,
    call,
    check_leaks,
    run_many,
)
from tests.fixtures import wait_for

N = 12
CONCURRENCY = 4


def _models_on(upstreams: dict[str, str]) -> list[dict[str, Any]]:
    """alpha, beta, gamma on the named upstreams (default: the fake)."""
    return [{"name": name, "tier_score": 0.5, "specializations": [], "mode": "chat",
             "upstream_model": f"m-{name}", "upstream": upstreams.get(name, "default")}
            for name in ("alpha", "beta", "gamma")]


ROUTING = {"routing": {"strategy": "failover", "default_group": "chat",
                       "circuit_breaker": {"failures": 1000},
                       "groups": {"chat": ["alpha", "beta"], "solo": ["gamma"]}}}


def _verbatim(expected: bytes) -> Any:
    """A judge: the client must receive exactly the upstream's bytes."""

    def judge(outcome: Outcome) -> Outcome:
        if outcome.status == 200 and outcome.text.encode() == expected:
            return Outcome("ok", 200, outcome.text)
        return Outcome("unexpected", outcome.status, outcome.text,
                       f"not passed through verbatim: {outcome.text[:160]!r}")

    return judge


@pytest.mark.parametrize("mode", MODES)
async def test_a_refused_connection_fails_over_and_leaves_a_lone_candidate_a_502(
    launch, upstream, row, mode: str, dead_port: int
):
    dead = f"http://127.0.0.1:{dead_port}"
    gateway, base = await launch(
        upstreams={"default": {"url": upstream[1]}, "dead": {"url": dead}},
        models=_models_on({"alpha": "dead", "gamma": "dead"}), routing=ROUTING)
    stream = mode == "stream"
    failover = row("connection refused -> failover", mode)
    outcomes = await run_many(failover, gateway, N, stream=stream, concurrency=CONCURRENCY)
    assert {o.headers.get("X-HX-Model") for o in outcomes} == {"beta"}
    alone = row("connection refused, no other candidate", mode, expect="clean")
    outcomes = await run_many(alone, gateway, N, stream=stream, concurrency=CONCURRENCY,
                              body={**CHAT, "model": "solo"})
    assert {o.status for o in outcomes} == {502}
    await check_leaks(base, alone, concurrency=CONCURRENCY)
    failover.leaks, failover.leak_detail = alone.leaks, dict(alone.leak_detail)
    failover.assert_clean()
    alone.assert_clean()


@pytest.mark.parametrize("mode", MODES)
async def test_a_reset_before_headers_fails_over_and_leaves_a_lone_candidate_a_502(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch()
    stream = mode == "stream"
    fake.behave("m-alpha", reset_before_headers=True)
    failover = row("reset before headers -> failover", mode)
    outcomes = await run_many(failover, gateway, N, stream=stream, concurrency=CONCURRENCY)
    assert {o.headers.get("X-HX-Model") for o in outcomes} == {"beta"}
    fake.behave("m-gamma", reset_before_headers=True)
    alone = row("reset before headers, no other candidate", mode, expect="clean")
    outcomes = await run_many(alone, gateway, N, stream=stream, concurrency=CONCURRENCY,
                              body={**CHAT, "model": "solo"})
    assert {o.status for o in outcomes} == {502}
    await check_leaks(base, alone, concurrency=CONCURRENCY)
    failover.leaks, failover.leak_detail = alone.leaks, dict(alone.leak_detail)
    failover.assert_clean()
    alone.assert_clean()


@pytest.mark.parametrize("mode", MODES)
async def test_headers_then_silence_before_the_first_byte_fails_over(
    launch, fake: FakeUpstream, row, mode: str
):
    """Headers alone are not an answer: the first-byte timeout moves on to the next model."""
    gateway, base = await launch(timeouts={"first_byte": 1})
    fake.behave("m-alpha", silent_after_headers=True)
    line = row("headers then silence -> first-byte timeout, failover", mode)
    outcomes = await run_many(line, gateway, 6, stream=mode == "stream", concurrency=3)
    assert {o.headers.get("X-HX-Model") for o in outcomes} == {"beta"}
    await wait_for(lambda: fake.cancelled.count("m-alpha") >= 1, timeout=5)
    await check_leaks(base, line, concurrency=3)
    line.assert_clean()


@pytest.mark.parametrize("mode", MODES)
async def test_silence_mid_response_hits_the_idle_timeout(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch(timeouts={"idle": 1})
    if mode == "stream":
        fake.behave("m-alpha", content="a b c d", hang_after_chunks=2)
    else:
        fake.behave("m-alpha", hang_mid_body=True)
    line = row("silence mid-response (idle timeout)", mode, expect="clean")
    started = time.monotonic()
    outcomes = await run_many(line, gateway, 6, stream=mode == "stream", concurrency=3)
    assert time.monotonic() - started < 8
    if mode == "stream":
        assert all(o.error and o.error["code"] == "upstream_timeout" for o in outcomes)
        assert all(o.text.count('"content"') == 2 for o in outcomes)  # nothing repeated
    assert fake.seen_models() == ["m-alpha"] * 6  # no failover after the first byte
    await check_leaks(base, line, concurrency=3)
    line.assert_clean()


@pytest.mark.parametrize(("mode", "content_length"),
                         [("stream", False), ("plain", True), ("plain", False)])
async def test_reset_mid_response(
    launch, fake: FakeUpstream, row, mode: str, content_length: bool
):
    gateway, base = await launch()
    if mode == "stream":
        fake.behave("m-alpha", content="a b c d e", reset_after_chunks=3)
        name = "reset mid-stream"
    else:
        fake.behave("m-alpha", reset_after_chunks=1, content_length=content_length)
        name = "reset mid-body" + ("" if content_length else " (chunked)")
    line = row(name, mode, expect="clean")
    outcomes = await run_many(line, gateway, N, stream=mode == "stream",
                              concurrency=CONCURRENCY)
    if mode == "stream":
        for outcome in outcomes:  # the three chunks sent, each once, then the error event
            assert outcome.text.count('"content"') == 3, outcome.text
    assert fake.seen_models() == ["m-alpha"] * N
    await check_leaks(base, line, concurrency=CONCURRENCY)
    line.assert_clean()


async def test_a_half_line_then_a_reset_never_shows_the_half_line(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    fake.behave("m-alpha", content="a b c", garbage_after_chunks=1)
    line = row("truncated SSE line then reset", "stream", expect="clean")
    outcomes = await run_many(line, gateway, N, stream=True, concurrency=CONCURRENCY)
    assert all('"cont' not in o.text.split("event: error")[0][-40:] for o in outcomes)
    await check_leaks(base, line, concurrency=CONCURRENCY)
    line.assert_clean()


async def test_a_stream_ending_in_the_middle_of_a_line_ends_with_an_error_event(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    first = b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'
    fake.behave("m-alpha", script=((0, first), (0.05, b'data: {"choices": [{"ind')))
    line = row("stream ends (EOF) mid-line", "stream", expect="clean")
    await run_many(line, gateway, 4, stream=True, concurrency=2)
    await check_leaks(base, line, concurrency=2)
    line.assert_clean()


GARBAGE_SSE = (
    b"data: {not json at all\n\n"
    b": \xff\xfe binary comment\n\n"
    b"data: plain text\r\n\r\n"
    b"event: weird\ndata: {\"x\": 1}\n\n"
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("mode", MODES)
async def test_garbage_from_the_upstream_passes_through_verbatim(
    launch, fake: FakeUpstream, row, mode: str
):
    """The gateway copies bytes; it does not parse (or choke on) what a model sends."""
    gateway, base = await launch()
    payload = GARBAGE_SSE if mode == "stream" else b'{"choices": [garbage \xff\xfe'
    fake.behave("m-alpha", script=((0, payload[:20]), (0.01, payload[20:])))
    line = row("garbage body, passed through verbatim", mode)
    expected = payload.decode("utf-8", "replace").encode()
    await run_many(line, gateway, N, stream=mode == "stream", concurrency=CONCURRENCY,
                   judge=_verbatim(expected))
    await check_leaks(base, line, concurrency=CONCURRENCY)
    line.assert_clean()


async def test_sse_comments_event_id_and_retry_lines_pass_through(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "w"}}]}\n\n'
    pieces = [b": ping\n\n", b"retry: 1000\n\n"]
    for i in range(20):
        pieces += [b": ping\n\n", f"event: message\nid: {i}\n".encode() + event]
    pieces.append(b": keep-alive comment\r\n\r\ndata: [DONE]\n\n")
    fake.behave("m-alpha", script=tuple((0.005, p) for p in pieces))
    line = row("SSE : ping, event:, id:, retry: lines", "stream")
    await run_many(line, gateway, N, stream=True, concurrency=CONCURRENCY,
                   judge=_verbatim(b"".join(pieces)))
    await check_leaks(base, line, concurrency=CONCURRENCY)
    line.assert_clean()


async def _read_all(gateway, *, stream: bool, row: Row) -> int:
    """One large response, read as fast as possible; returns the bytes received."""
    body = {**CHAT, "stream": True} if stream else CHAT
    received = 0
    tail = b""
    async with aiohttp.ClientSession() as session:
        async with asyncio.timeout(60):
            async with session.post(gateway.url + "/v1/chat/completions", json=body,
                                    headers=gateway.auth) as resp:
                async for chunk in resp.content.iter_any():
                    received += len(chunk)
                    tail = (tail + chunk)[-64:]
    ok = resp.status == 200 and (tail.endswith(b"data: [DONE]\n\n") if stream
                                 else tail.endswith(b'"finish_reason": "stop"}]}'))
    row.count(Outcome("ok" if ok else "unexpected", resp.status, detail=f"tail {tail!r}"))
    return received


@pytest.mark.parametrize("mode", MODES)
async def test_a_50_mb_response_keeps_gateway_memory_bounded(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch()
    size = 50_000_000
    if mode == "stream":
        fake.behave("m-alpha", stream_bytes=size)
    else:
        fake.behave("m-alpha", body_bytes=size)
    line = row("50 MB response", mode)
    async with PeakRss(base.probe) as peak:
        for _ in range(2):
            received = await _read_all(gateway, stream=mode == "stream", row=line)
            assert received >= size
    line.bound_peak(peak, 24)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_an_sse_line_longer_than_any_buffer_keeps_memory_bounded(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    line_bytes = b"data: " + b"z" * 40_000_000
    pieces = tuple((0.0, line_bytes[i:i + 65536]) for i in range(0, len(line_bytes), 65536))
    fake.behave("m-alpha", script=(*pieces, (0.0, b"\n\ndata: [DONE]\n\n")))
    line = row("40 MB SSE line without a newline", "stream", expect="any")
    async with PeakRss(base.probe) as peak:
        outcome = await call_read(gateway)
        line.count(outcome)
    line.bound_peak(peak, 32)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def call_read(gateway) -> Outcome:
    """A streamed request whose (huge) body is counted, not kept."""
    async with aiohttp.ClientSession() as session:
        try:
            async with asyncio.timeout(60):
                async with session.post(gateway.url + "/v1/chat/completions",
                                        json={**CHAT, "stream": True},
                                        headers=gateway.auth) as resp:
                    tail = b""
                    async for chunk in resp.content.iter_any():
                        tail = (tail + chunk)[-4096:]
        except TimeoutError:
            return Outcome("hang")
        except aiohttp.ClientError as exc:
            return Outcome("unexpected", detail=str(exc))
    text = tail.decode("utf-8", "replace")
    if text.endswith("data: [DONE]\n\n"):
        return Outcome("ok", resp.status)
    if "event: error\ndata: " in text and text.endswith("\n\n"):
        return Outcome("clean", resp.status)
    return Outcome("unexpected", resp.status, detail=f"tail {text[-120:]!r}")


@pytest.mark.parametrize("mode", MODES)
async def test_a_slow_trickle_within_the_idle_timeout_passes_through_intact(
    launch, fake: FakeUpstream, row, mode: str
):
    """1 byte every 50 ms for 3 s, with gaps far below the idle timeout (2 s)."""
    gateway, base = await launch()
    if mode == "stream":
        payload = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\ndata: [DONE]\n\n'
    else:
        payload = b'{"id": "t", "choices": [{"message": {"content": "slow but ok"}}]}'
    fake.behave("m-alpha", script=tuple((0.05, payload[i:i + 1]) for i in range(len(payload))))
    line = row(f"slow trickle, 1 byte / 50 ms ({len(payload) * 0.05:.1f} s)", mode)
    await run_many(line, gateway, 4, stream=mode == "stream", concurrency=4,
                   judge=_verbatim(payload))
    await check_leaks(base, line, concurrency=4)
    line.assert_clean()


@pytest.mark.parametrize("mode", MODES)
async def test_429_with_retry_after_fails_over_and_keeps_the_model_out_that_long(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch()
    stream = mode == "stream"
    fake.behave("m-alpha", status=429, retry_after="2")
    line = row("429 + Retry-After: 2 -> failover, model kept out 2 s", mode)
    limited_at = time.monotonic()
    async with aiohttp.ClientSession() as session:
        first = line.count(await call(session, gateway, stream=stream))
        assert first.headers.get("X-HX-Model") == "beta"
        fake.behave("m-alpha")  # healthy again, but the gateway was told to wait 2 s
        while time.monotonic() - limited_at < 1.6:
            outcome = line.count(await call(session, gateway, stream=stream))
            assert outcome.headers.get("X-HX-Model") == "beta"
            await asyncio.sleep(0.1)
        assert fake.seen_models().count("m-alpha") == 1
        await asyncio.sleep(max(0.0, limited_at + 2.3 - time.monotonic()))
        back = line.count(await call(session, gateway, stream=stream))
        assert back.headers.get("X-HX-Model") == "alpha"
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_429_with_an_http_date_retry_after_keeps_the_model_out_too(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    fake.behave("m-alpha", status=429, retry_after=formatdate(time.time() + 4, usegmt=True))
    line = row("429 + Retry-After as HTTP-date", "plain")
    async with aiohttp.ClientSession() as session:
        for _ in range(4):
            line.count(await call(session, gateway, stream=False))
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()
    assert fake.seen_models().count("m-alpha") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_an_upstream_that_never_answers_hits_the_total_timeout(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch(timeouts={"first_byte": 30, "total": 1.5})
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, header_delay=3600)
    line = row("upstream never answers (total timeout)", mode, expect="clean")
    started = time.monotonic()
    outcomes = await run_many(line, gateway, 6, stream=mode == "stream", concurrency=6)
    assert time.monotonic() - started < 6
    assert {o.status for o in outcomes} == {504}
    await wait_for(lambda: len(fake.cancelled) == len(fake.requests), timeout=5)
    await check_leaks(base, line, concurrency=6)
    line.assert_clean()


@pytest.mark.parametrize("mode", MODES)
async def test_an_upstream_that_accepts_and_never_reads(launch, row, mode: str):
    hole = Blackhole()
    url = await hole.start()
    try:
        gateway, base = await launch(upstream_url=url, timeouts={"first_byte": 1, "total": 3})
        line = row("upstream accepts TCP, never reads or answers", mode, expect="clean")
        outcomes = await run_many(line, gateway, 6, stream=mode == "stream", concurrency=6)
        assert {o.status for o in outcomes} == {504}
        await wait_for(lambda: hole.open <= 1, timeout=5)  # at most the readiness probe's
        await check_leaks(base, line, concurrency=6)
        line.notes.append(f"blackhole saw {hole.accepted} connections")
        line.assert_clean()
    finally:
        await hole.close()


@pytest.mark.parametrize("mode", MODES)
async def test_a_response_outliving_the_total_timeout_is_ended_cleanly(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch(timeouts={"total": 2, "idle": 5})
    if mode == "stream":
        fake.behave("m-alpha", content="w " * 40, chunk_delay=0.2)
    else:
        fake.behave("m-alpha", hang_mid_body=True)
    line = row("total timeout mid-response", mode, expect="clean")
    outcomes = await run_many(line, gateway, 4, stream=mode == "stream", concurrency=4)
    if mode == "stream":
        assert all("total timeout" in (o.error or {}).get("message", "") for o in outcomes)
    await wait_for(lambda: len(fake.cancelled) == 4, timeout=5)
    await check_leaks(base, line, concurrency=4)
    line.assert_clean()

