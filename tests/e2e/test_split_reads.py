"""An upstream whose answer reaches the gateway a byte per read, as a slow or hostile
peer's may (a CRLF cut between its CR and LF, an event's blank line in reads of its
own): what the client gets is the stream the upstream sent, events neither added,
merged nor split."""

from __future__ import annotations

import signal

import aiohttp

from tests.conftest import StartGateway
from tests.e2e import test_odd_upstream_answers as odd
from tests.e2e.test_odd_upstream_answers import RawUpstream, Writes, _chat
from tests.fixtures import Gateway

# Its raw upstream and the gateway on it that tests leaving nothing behind share.
module_raw, raw = odd.module_raw, odd.raw
module_gateway, gateway = odd.module_gateway, odd.gateway

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def dribbled(text: bytes) -> Writes:
    """`text` as a chunked body of one byte per chunk, each written apart, so that the
    gateway reads it a byte at a time."""
    writes: Writes = [HEAD]
    for at in range(len(text)):
        writes += [b"1\r\n" + text[at:at + 1] + b"\r\n", 0.002]
    return writes


def _delta(word: bytes, end: bytes = b"\r\n\r\n") -> bytes:
    return b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}%s' % (word, end)


STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\n'
USAGE = (b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,'
         b'"total_tokens":5}}\r\n\r\n')


async def test_a_crlf_stream_read_a_byte_at_a_time_without_its_usage_chunk_gains_no_blank_line(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # The client did not ask for usage: the gateway asked for it, and keeps it back.
    raw.answers["m-gamma"] = [*dribbled(_delta(b"A") + STOP + USAGE + b"data: [DONE]\r\n\r\n"),
                              b"0\r\n\r\n"]
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert (status, body) == (200, _delta(b"A") + STOP + b"data: [DONE]\r\n\r\n")


async def test_an_error_after_the_lf_of_a_crlf_read_alone_is_an_event_of_its_own(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # Its line has ended (CR, then LF in a read of its own), not its event; then the
    # upstream breaks its chunked framing mid-stream.
    raw.answers["m-gamma"] = [*dribbled(_delta(b"A", end=b"\r\n")), 0.05, b"-"]
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200
    assert body.startswith(_delta(b"A", end=b"\r\n") + b"\nevent: error\ndata: ")


async def test_an_error_after_a_blank_line_of_a_lone_cr_adds_no_blank_line(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # CRLF then CR: the event has ended, whatever follows the CR.
    raw.answers["m-gamma"] = [*dribbled(_delta(b"A", end=b"\r\n\r")), 0.05, b"-"]
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200
    assert body.startswith(_delta(b"A", end=b"\r\n\r") + b"event: error\ndata: ")


async def test_a_stream_the_drain_cuts_after_a_cr_ends_that_event_before_its_error_event(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # The read ended inside a CRLF; then nothing more comes, and a stop's drain runs out.
    first = _delta(b"A", end=b"\r")
    raw.answers["m-gamma"] = [HEAD, b"%x\r\n%s\r\n" % (len(first), first), 30.0]
    gateway = await start_gateway(upstream_url=raw.url,
                                  gateway={"shutdown": {"drain_timeout": 0.5}})
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth, json={
            "messages": [{"role": "user", "content": "hi"}], "model": "solo",
            "stream": True}) as resp:
        relayed = b""
        while not relayed.endswith(b"\r"):
            relayed += await resp.content.readany()
        gateway.signal(signal.SIGTERM)
        body = relayed + await resp.read()
    assert body.startswith(first + b"\n\nevent: error\ndata: ")
    assert b"the gateway stopped this stream" in body
