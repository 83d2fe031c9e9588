"""Upstream and client faults on a streamed `POST /v1/responses`, whose events the
gateway rebinds as it relays them (the response's id learned from `response.created`).

Expected: a stream cut by the upstream ends with `event: error` in OpenAI's shape after
the events relayed whole; a `response.created` that is broken or huge is relayed (the
rebinding learns the id from a later event, or not at all), never a crash; a client
that leaves cancels the upstream request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.forms import responses_verdict
from tests.faults.harness import HANG_BOUND, Outcome, PeakRss, Row, check_leaks
from tests.fixtures import Gateway, wait_for

RESPONSES = "/v1/responses"
BODY = {"model": "chat", "input": "hi", "stream": True}


async def stream(session: aiohttp.ClientSession, gateway: Gateway, *,
                 strict_data: bool = True) -> Outcome:
    try:
        async with asyncio.timeout(HANG_BOUND), session.post(
                gateway.url + RESPONSES, json=BODY, headers=gateway.auth) as resp:
            text = (await resp.read()).decode("utf-8", "replace")
    except TimeoutError:
        return Outcome("hang")
    except aiohttp.ClientError as exc:
        return Outcome("unexpected", detail=f"{type(exc).__name__}: {exc}")
    if resp.status != 200 or resp.content_type != "text/event-stream":
        return Outcome("unexpected", resp.status, text, f"HTTP {resp.status}: {text[:160]!r}")
    kind, detail, error = responses_verdict(text, strict_data=strict_data)
    return Outcome(kind, resp.status, text, detail, error=error)


async def _run(row: Row, gateway: Gateway, n: int, **kwargs: Any) -> list[Outcome]:
    async with aiohttp.ClientSession() as session:
        outcomes = await asyncio.gather(*(stream(session, gateway, **kwargs) for _ in range(n)))
    return [row.count(o) for o in outcomes]


def _event(kind: str, **data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def _response(ident: str, status: str = "in_progress", **extra: Any) -> dict[str, Any]:
    return {"id": ident, "object": "response", "status": status, "model": "m-alpha",
            "output": [], **extra}


AFTER_CREATED = (
    _event("response.in_progress", sequence_number=1, response=_response("resp_up1")),
    _event("response.output_text.delta", sequence_number=2, item_id="msg_1", output_index=0,
           content_index=0, delta="hi", logprobs=[]),
    _event("response.completed", sequence_number=3,
           response=_response("resp_up1", "completed")),
)


async def test_an_upstream_dying_mid_stream_ends_it_with_an_error_event(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    fake.behave("m-alpha", content="a b c d e", reset_after_chunks=3)
    line = row("responses: upstream resets mid-stream", "stream", expect="clean")
    outcomes = await _run(line, gateway, 8)
    for outcome in outcomes:  # the three deltas, each once, whole, then the error event
        assert outcome.text.count("event: response.output_text.delta\n") == 3, outcome.text
    assert fake.seen_models() == ["m-alpha"] * 8  # no failover once events went
    await check_leaks(base, line, concurrency=8)
    line.assert_clean()


async def test_a_broken_response_created_is_relayed_and_the_id_learned_later(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    broken = b'event: response.created\ndata: {"type": "response.created", "response": ' \
             b'{"id": "resp_up1", "object": "response", "status": "in_progr\n\n'
    fake.behave("m-alpha", script=tuple((0.0, piece) for piece in (broken, *AFTER_CREATED)))
    line = row("responses: response.created with broken JSON", "stream")
    outcomes = await _run(line, gateway, 6, strict_data=False)
    for outcome in outcomes:
        completed = json.loads(outcome.text.rstrip("\n").rsplit("data: ", 1)[1])
        assert completed["response"]["id"].startswith("resp_hx"), outcome.text  # rebound
    await check_leaks(base, line, concurrency=6)
    line.assert_clean()


async def test_a_40_mb_response_created_is_relayed_with_memory_bounded(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    created = _event("response.created", sequence_number=0,
                     response=_response("resp_up1", instructions="x" * 40_000_000))
    pieces = [(0.0, created[at:at + 65536]) for at in range(0, len(created), 65536)]
    fake.behave("m-alpha", script=(*pieces, *((0.0, p) for p in AFTER_CREATED)))
    line = row("responses: 40 MB response.created event", "stream", expect="any")
    async with PeakRss(base.probe) as peak:
        await _run(line, gateway, 1)
    line.bound_peak(peak, 32)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean(expect="any")


@pytest.mark.parametrize("leave_after", ["response.created", "response.output_text.delta"])
async def test_a_client_leaving_a_responses_stream_cancels_the_upstream(
    launch, fake: FakeUpstream, row, leave_after: str
):
    gateway, base = await launch()
    fake.behave("m-alpha", gate=asyncio.Event())  # the stream pauses after its first delta
    line = row(f"responses: client leaves after {leave_after}", "stream")
    n = 6

    async def leave(session: aiohttp.ClientSession) -> None:
        resp = await session.post(gateway.url + RESPONSES, json=BODY, headers=gateway.auth)
        while f"event: {leave_after}\n" not in (await resp.content.readuntil(b"\n\n")).decode():
            pass
        resp.close()

    async with aiohttp.ClientSession() as session:
        await asyncio.wait_for(asyncio.gather(*(leave(session) for _ in range(n))), HANG_BOUND)
    with contextlib.suppress(AssertionError):
        await wait_for(lambda: len(fake.cancelled) >= n, timeout=5)
    for i in range(n):  # "succeeded": the upstream request was cancelled in time
        line.count(Outcome("ok" if i < len(fake.cancelled) else "hang",
                           detail="upstream response still running"))
    await check_leaks(base, line, concurrency=n)
    line.assert_clean()
