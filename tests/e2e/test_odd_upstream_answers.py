"""Upstream answers that are odd but legal, or broken in ways real servers are, through
the real gateway: a raw upstream writes each byte as the test says, chosen by the model
the request names. Each test also checks the gateway gave back the upstream's slots."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import time
import zlib
from collections.abc import AsyncIterator

import aiohttp
import psycopg
import pytest

from hxgw.upstream.affinity import bind, unbind
from tests import one_gateway
from tests.conftest import StartGateway
from tests.fixtures import DEFAULT_MODELS, DEFAULT_ROUTING, Gateway, ledger_rows, wait_for
from tests.postgres import postgres_server, postgres_url  # noqa: F401 -- fixtures
from tests.raw_upstream import read_request, serving

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
OK = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,' \
     b'"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]}'
Writes = list[bytes | float]
"""What the upstream does for one request: bytes to write, or seconds to wait."""


def whole(status: bytes, body: bytes, extra: bytes = b"",
          content_type: bytes = b"application/json") -> Writes:
    return [b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body]


def sse(*events: bytes, extra: bytes = b"") -> Writes:
    """A chunked event stream, one chunk per event, a little apart."""
    writes: Writes = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n" + extra + b"\r\n"]
    for event in events:
        writes += [b"%x\r\n%s\r\n" % (len(event), event), 0.02]
    return [*writes, b"0\r\n\r\n"]


class RawUpstream:
    """Answers each request with the writes set for its body's model; OK otherwise."""

    def __init__(self) -> None:
        self.answers: dict[str, Writes] = {}
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Each request of a connection in turn (`serving` ends it when the peer goes)."""
        while True:
            body = (await read_request(reader)).partition(b"\r\n\r\n")[2]
            model = json.loads(body).get("model", "") if body else ""
            for step in self.answers.get(model, whole(b"200 OK", OK)):
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    writer.write(step)
                    await writer.drain()


@pytest.fixture(scope="module")
async def module_raw() -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream()
    async with serving(upstream.serve) as server:
        upstream.url = f"http://127.0.0.1:{server.origin.port}"
        yield upstream


@pytest.fixture
def raw(module_raw: RawUpstream) -> RawUpstream:
    """The module's raw upstream, with no answers set: each test sets its own."""
    module_raw.answers.clear()
    return module_raw


@pytest.fixture(scope="module")
async def module_gateway(
    tmp_path_factory: pytest.TempPathFactory, module_raw: RawUpstream
) -> AsyncIterator[Gateway]:
    async with one_gateway.serving_shared(tmp_path_factory.mktemp("odd"), module_raw.url) as gw:
        yield gw
        # Each test's own look at the log may miss a line written after its answer.
        assert gw.log_path is not None and b"Traceback" not in gw.log_path.read_bytes()


@pytest.fixture
def gateway(module_gateway: Gateway, raw: RawUpstream) -> Gateway:
    """The module's gateway on the raw upstream, shared by the tests that leave nothing
    in it (tests/one_gateway.py); those that do start their own on the same upstream."""
    module_gateway.begin_test()
    return module_gateway


async def _slots_in_use(gateway: Gateway, client: aiohttp.ClientSession) -> int:
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        return sum(upstream["in_use"] for upstream in (await resp.json())["upstreams"])


async def _access_line(gateway: Gateway, request: str) -> str:
    """The access line of the request `request` names ("POST /v1/messages"), awaited: it
    is written after the answer. (Each /healthz of the start has one too.)"""
    def line() -> str | None:
        return next((x for x in gateway.logs().splitlines() if f" {request} status=" in x), None)

    await wait_for(line, timeout=10)
    return line() or ""


async def _all_slots_back(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    for _ in range(50):
        if await _slots_in_use(gateway, client) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway kept an upstream slot after every request ended")


async def _chat(client: aiohttp.ClientSession, gateway: Gateway, **body: object
                ) -> tuple[int, dict[str, str], bytes]:
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, **body},
                           headers=gateway.auth) as resp:
        return resp.status, dict(resp.headers), await resp.read()


@pytest.mark.parametrize("value", [
    b"\xb2",  # a digit to str.isdigit(), not to int()
    b"Mon, 01 Jan 99999999999999999999 00:00:00 GMT",  # its parse overflows: it was a 500
])
async def test_a_retry_after_that_is_no_wait_is_ignored_and_the_request_fails_over(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession, value: bytes
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    limited = whole(b"429 Too Many Requests", b'{"error":{"message":"slow down"}}',
                    extra=b"Retry-After: " + value + b"\r\n")
    raw.answers["m-alpha"] = raw.answers["m-gamma"] = limited
    status, headers, _ = await _chat(client, gateway, model="chat")
    assert (status, headers["X-HX-Model"]) == (200, "beta")
    status, _, body = await _chat(client, gateway, model="solo")  # no other candidate
    assert status == 429 and json.loads(body)["error"]["message"] == "slow down"
    await _all_slots_back(gateway, client)
    assert "Traceback" not in gateway.logs()


async def test_a_stream_whose_lines_end_with_a_lone_cr_is_relayed_as_it_came(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    events = [b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\r\r' % word
              for word in (b"one", b"two")]
    raw.answers["m-gamma"] = sse(*events, b"data: [DONE]\r\r")
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200 and body == b"".join(events) + b"data: [DONE]\r\r"
    await _all_slots_back(gateway, client)


async def test_a_gzipped_stream_sent_despite_identity_is_relayed_whole_and_unchanged(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    text = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    packer = zlib.compressobj(wbits=31)  # gzip, flushed per event as a streaming server does
    pieces = [packer.compress(text[:60]) + packer.flush(zlib.Z_SYNC_FLUSH),
              packer.compress(text[60:]) + packer.flush()]
    raw.answers["m-gamma"] = sse(*pieces, extra=b"Content-Encoding: gzip\r\n")
    status, headers, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert body == text  # aiohttp decoded it: nothing was added in plain text
    await _all_slots_back(gateway, client)


async def test_an_encoded_answer_whose_ids_must_be_rebound_is_a_502_that_says_why(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    made = gzip.compress(b'{"id":"resp_1","object":"response","status":"completed"}')
    raw.answers["m-gamma"] = whole(b"200 OK", made, extra=b"Content-Encoding: gzip\r\n")
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi"}) as resp:
        assert resp.status == 502
        assert "encoded its answer (gzip)" in (await resp.json())["error"]["message"]
    await _all_slots_back(gateway, client)


async def test_an_answer_labelled_content_encoding_identity_is_read_as_any_other(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    made = b'{"id":"resp_1","object":"response","status":"completed","output":[]}'
    raw.answers["m-gamma"] = whole(b"200 OK", made, extra=b"Content-Encoding: identity\r\n")
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["id"] != "resp_1"  # bound to the model that made it


@pytest.mark.parametrize("fields", [[b"gzip", b"identity"], [b"identity", b"gzip"]])
async def test_a_repeated_content_encoding_reaches_the_client_whole_and_is_read_whole(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession,
    fields: list[bytes],
):
    # The client had been told the first and the gateway read the last: one of them
    # saw gzip bytes as plain, or plain bytes as gzip.
    made = gzip.compress(b'{"id":"resp_1","object":"response","status":"completed"}')
    extra = b"".join(b"Content-Encoding: %s\r\n" % field for field in fields)
    raw.answers["m-gamma"] = whole(b"200 OK", made, extra=extra)
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**CHAT, "model": "solo"}, auto_decompress=False) as resp:
        assert resp.headers["Content-Encoding"] == b", ".join(fields).decode()
        assert await resp.read() == made
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi"}) as resp:
        assert resp.status == 502  # encoded: its ids cannot be rebound, whichever came first
    await _all_slots_back(gateway, client)


async def test_an_upstream_header_value_in_utf8_reaches_the_client_unchanged(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    raw.answers["m-gamma"] = whole(b"200 OK", OK, extra="x-ratelimit-note: café ☃\r\n"
                                   .encode() + b"x-ratelimit-odd: \xff\r\n")
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={**CHAT, "model": "solo"}) as resp:
        assert resp.status == 200
        note = dict(resp.raw_headers)[b"x-ratelimit-note"]
        odd = dict(resp.raw_headers)[b"x-ratelimit-odd"]
    assert note == "café ☃".encode() and odd == "\ufffd".encode()


async def test_an_error_after_a_read_that_ended_inside_a_crlf_is_an_event_of_its_own(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    first = b'data: {"choices":[{"index":0,"delta":{"content":"A"}}]}\r'
    # Its chunk ends between CR and LF; then the upstream goes away mid-stream.
    raw.answers["m-gamma"] = [*sse(first)[:-1], 0.05, b"-"]
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200
    assert body.startswith(first + b"\n\nevent: error\ndata: ")  # A's event, then the error


@pytest.mark.parametrize("status", [b"404 Not Found", b"502 Bad Gateway"])
async def test_a_lone_model_s_html_error_page_reaches_the_client_in_openai_s_shape(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession, status: bytes
):
    # As a proxy in front of the upstream answers a wrong path (404), or a status that
    # would fail over with no other candidate (a proxy's 502): the SDKs read `error`.
    page = b"<html><body><h1>" + status + b"</h1></body></html>"
    raw.answers["m-gamma"] = whole(status, page, content_type=b"text/html")
    answered, headers, body = await _chat(client, gateway, model="solo")
    code = int(status.split()[0])
    assert (answered, headers["Content-Type"]) == (code, "application/json")
    assert json.loads(body) == {"error": {"message": page.decode(), "type": "upstream_error",
                                          "param": None, "code": f"http_{code}"}}
    await _all_slots_back(gateway, client)


async def test_an_error_labelled_as_an_event_stream_reaches_the_client_as_the_error_it_is(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # Judged as a stream, it was cut as "ended in the middle of an event": its message
    # lost, and a client's mistake held against the model.
    error = b'{"error":{"message":"bad temperature","type":"invalid_request_error"}}'
    raw.answers["m-gamma"] = [*sse(error)[:1], b"%x\r\n%s\r\n" % (len(error), error), 0.05,
                              b"0\r\n\r\n"]
    raw.answers["m-gamma"][0] = raw.answers["m-gamma"][0].replace(b"200 OK", b"400 Bad Request")
    for stream in (False, True):
        status, _, body = await _chat(client, gateway, model="solo", stream=stream)
        assert status == 400 and json.loads(body)["error"]["message"] == "bad temperature"
    assert "ended the stream" not in gateway.logs()
    await _all_slots_back(gateway, client)


async def test_an_error_sent_as_an_event_reaches_the_client_as_its_error_object(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    error = b'{"error":{"message":"bad temperature","type":"invalid_request_error"}}'
    body = b"event: error\ndata: " + error + b"\n\n"
    raw.answers["m-gamma"] = whole(b"400 Bad Request", body, content_type=b"text/event-stream")
    status, headers, answer = await _chat(client, gateway, model="solo", stream=True)
    assert (status, headers["Content-Type"]) == (400, "application/json")
    assert json.loads(answer) == json.loads(error)


async def test_an_error_quoting_the_gateway_s_key_over_two_reads_reaches_the_client_masked(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    secret = "sk-upstream-secret-value-1234"
    said = (b'{"error":{"message":"Invalid model. Received API Key = ',
            secret.encode() + b'","type":"invalid_request_error"}}')
    head = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(b"".join(said)))
    raw.answers["m-gamma"] = [head + said[0], 0.1, said[1]]
    gateway = await start_gateway(upstream_url=raw.url, upstream_key=secret)
    status, _, body = await _chat(client, gateway, model="solo")
    assert status == 400 and secret.encode() not in body
    assert json.loads(body)["error"]["message"].endswith("= ...1234")


async def _undecoded_error(client: aiohttp.ClientSession, gateway: Gateway, model: str
                           ) -> tuple[int, str]:
    """A chat's error status and message, as it came (the client decodes nothing), after
    checking it came plain."""
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": model},
                           headers=gateway.auth, auto_decompress=False) as resp:
        assert "Content-Encoding" not in resp.headers
        return resp.status, json.loads(await resp.read())["error"]["message"]


@pytest.mark.parametrize("coding", [b"gzip", b"deflate"])
async def test_a_compressed_error_quoting_the_gateway_s_key_reaches_the_client_decoded_and_masked(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession, coding: bytes
):
    secret = "sk-upstream-secret-value-5678"
    said = b'{"error":{"message":"Invalid key = %s","type":"invalid_request_error"}}' % (
        secret.encode())
    packed = gzip.compress(said) if coding == b"gzip" else zlib.compress(said)
    head = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (coding, len(packed)))
    raw.answers["m-gamma"] = [head + packed[:10], 0.1, packed[10:]]
    gateway = await start_gateway(upstream_url=raw.url, upstream_key=secret)
    status, message = await _undecoded_error(client, gateway, "solo")
    assert (status, message) == (400, "Invalid key = ...5678")
    await _all_slots_back(gateway, client)


@pytest.mark.parametrize(("packed", "chunked"), [
    (gzip.compress(b'{"error":{"message":') + gzip.compress(b'"two members"}}'), False),
    (gzip.compress(os.urandom(80_000), compresslevel=0), False),  # over 64 KiB, length said
    (gzip.compress(os.urandom(80_000), compresslevel=0), True),  # over 64 KiB, unsaid
], ids=["two-gzip-members", "over-64-kib", "over-64-kib-chunked"])
async def test_a_compressed_error_the_gateway_cannot_read_whole_goes_as_it_came(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession, packed: bytes,
    chunked: bool,
):
    # Decoded in part, or cut, it had reached the client as bytes no one could read (or,
    # of a length unsaid, as a 502).
    if chunked:
        head = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
        raw.answers["m-gamma"] = [head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)]
    else:
        raw.answers["m-gamma"] = whole(b"400 Bad Request", packed,
                                       extra=b"Content-Encoding: gzip\r\n")
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": "solo"},
                           headers=gateway.auth, auto_decompress=False) as resp:
        assert (resp.status, resp.headers["Content-Encoding"]) == (400, "gzip")
        assert await resp.read() == packed
    await _all_slots_back(gateway, client)


async def test_compressed_errors_of_every_candidate_reach_neither_client_nor_log_with_the_key(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    secret = "sk-upstream-secret-value-9abc"
    packed = gzip.compress(b'{"error":{"message":"Rate limit reached for key %s"}}' % (
        secret.encode()))
    raw.answers["m-alpha"] = raw.answers["m-beta"] = whole(
        b"429 Too Many Requests", packed, extra=b"Content-Encoding: gzip\r\nRetry-After: 1\r\n")
    gateway = await start_gateway(upstream_url=raw.url, upstream_key=secret)
    status, message = await _undecoded_error(client, gateway, "chat")
    assert (status, message) == (429, "Rate limit reached for key ...9abc")
    await _all_slots_back(gateway, client)
    gateway.stop()
    assert secret not in gateway.logs() and "Rate limit reached for key ...9abc" in gateway.logs()


async def test_a_lone_model_s_error_page_past_64_kib_keeps_its_status_and_its_start(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # It was a 502, which the SDKs retry, for a client's 400.
    page = b"<html><body><h1>400 Bad Request</h1>" + b"<p>filler</p>" * 20_000 + b"</html>"
    head = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
            b"Content-Length: %d\r\n\r\n" % len(page))
    raw.answers["m-gamma"] = [head + page[:1000], 0.05, page[1000:]]
    status, _, body = await _chat(client, gateway, model="solo")
    assert status == 400
    assert json.loads(body)["error"]["message"].startswith("<html><body><h1>400 Bad Request")
    await _all_slots_back(gateway, client)


async def test_an_upstream_s_json_error_goes_to_the_client_as_it_came(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    said = b'{"detail":"Not Found"}'  # FastAPI's own, not OpenAI's shape: still its words
    raw.answers["m-gamma"] = whole(b"404 Not Found", said)
    status, _, body = await _chat(client, gateway, model="solo")
    assert (status, body) == (404, said)


async def test_a_messages_stream_that_says_done_after_message_stop_is_whole(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # Some proxies end an Anthropic stream with OpenAI's [DONE] as well: past the final
    # event, it is no part of the answer.
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    delta = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":"hi"}}\n\n')
    raw.answers["m-gamma"] = sse(delta, stop, b"data: [DONE]\n\n")
    body = await _messages_stream(client, gateway)
    assert body == delta + stop


async def test_a_chat_stream_cut_after_a_delta_that_says_done_ends_with_an_error_event(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    said = b'data: {"choices":[{"index":0,"delta":{"content":"the word is [DONE]"}}]}\n\n'
    raw.answers["m-gamma"] = sse(said)
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200 and body.startswith(said)
    assert b"event: error" in body[len(said):]


async def test_a_streamed_retrieve_that_stops_before_its_response_completes_ends_with_an_error(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    made = b'{"id":"resp_up1","object":"response","status":"completed","model":"m-gamma"}'
    raw.answers["m-gamma"] = whole(b"200 OK", made)
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi"}) as resp:
        ident = (await resp.json())["id"]
    created = (b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
               b'"response":{"id":"resp_up1","object":"response","status":"in_progress"}}\n\n')
    raw.answers[""] = sse(created)  # a GET has no body, so no model: the retrieve's answer
    async with client.get(f"{gateway.url}/v1/responses/{ident}?stream=true",
                          headers=gateway.auth) as resp:
        body = await resp.read()
    events = [block for block in body.split(b"\n\n") if block]
    assert len(events) == 2 and events[-1].startswith(b"event: error\ndata: ")
    assert b"before its final event" in events[-1]


def _image_events(kind: bytes, data: bytes) -> bytes:
    return (b"event: image_generation." + kind + b'\ndata: {"type":"image_generation.' + kind
            + b'",' + data + b"}\n\n")


def _two_images(apart: bool) -> Writes:
    """A stream of two images, each with its final event; `apart`: the first final event's
    `event:` line in one read, its data and the second image's events in the next."""
    events = [
        _image_events(b"partial_image", b'"b64_json":"cDE=","partial_image_index":0'),
        _image_events(b"completed", b'"b64_json":"aW1nMQ=="'),
        _image_events(b"partial_image", b'"b64_json":"cDI=","partial_image_index":0'),
        _image_events(b"completed", b'"b64_json":"aW1nMg==","usage":{"input_tokens":5,'
                                    b'"output_tokens":2,"total_tokens":7}'),
    ]
    if not apart:
        return sse(*events)
    named, data = events[1].split(b"\n", 1)
    return sse(events[0] + named + b"\n", data + b"".join(events[2:]))


@pytest.mark.parametrize("apart", [False, True], ids=["whole-events", "event-line-apart"])
async def test_a_stream_of_two_images_is_relayed_past_the_first_image_s_final_event(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession, apart: bool
):
    # Whether OpenAI sends a final event per image is not documented: the second image
    # had been cut off as coming after the stream's end.
    painter = {"name": "painter", "tier_score": 0.5, "specializations": [],
               "upstream_model": "m-painter", "mode": "image_generation"}
    routing = {"routing": {**DEFAULT_ROUTING["routing"],
                           "groups": {**DEFAULT_ROUTING["routing"]["groups"],
                                      "draw": ["painter"]}}}
    raw.answers["m-painter"] = _two_images(apart)
    gateway = await start_gateway(upstream_url=raw.url, models=[*DEFAULT_MODELS, painter],
                                  routing=routing)
    body = {"model": "draw", "prompt": "two cats", "n": 2, "stream": True}
    async with client.post(gateway.url + "/v1/images/generations", json=body,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
        text = await resp.read()
    assert text.count(b"event: image_generation.completed") == 2
    assert b"aW1nMg==" in text and b"event: error" not in text
    await _all_slots_back(gateway, client)


def _response_events(named: bool, image: bytes) -> list[bytes]:
    """A Responses stream whose final event repeats a large image, as OpenAI's image
    tool's does, with or without `event:` lines."""
    made = b'"response":{"id":"resp_up1","object":"response","status":"%s","output":[%s]}'
    created = b'{"type":"response.created","sequence_number":0,' + made % (b"in_progress", b"")
    done = (b'{"type":"response.completed","sequence_number":1,'
            + made % (b"completed", b'{"type":"image_generation_call","result":"' + image
                      + b'"}') + b"}")
    events = [(b"response.created", created + b"}"), (b"response.completed", done)]
    return [(b"event: " + name + b"\n" if named else b"") + b"data: " + data + b"\n\n"
            for name, data in events]


async def test_an_error_event_after_done_in_the_same_read_is_no_failure_of_the_answer(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # The client has the whole answer; it had been logged, and counted, as a model's failure.
    content = b'data: {"choices":[{"index":0,"delta":{"content":"A"},"finish_reason":null}]}\n\n'
    raw.answers["m-gamma"] = sse(content, b'data: [DONE]\n\ndata: {"error":{"message":"late"}}\n\n')
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert (status, body) == (200, content + b"data: [DONE]\n\n")  # nor is the error relayed
    assert "outcome=ok" in await _access_line(gateway, "POST /v1/chat/completions")
    assert "ended the stream with an error event" not in gateway.logs()


@pytest.mark.parametrize("named", [True, False])
async def test_a_final_event_over_a_mebibyte_ends_its_stream_whole(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession, named: bool
):
    # Past 1 MiB a line is passed on in pieces, none of them a whole event: the stream
    # had been taken to end before its final event, and got an error event after it.
    image = b"A" * (3 * 1024 * 1024)
    stream = b"".join(_response_events(named, image))
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(stream))
    pieces = [stream[at : at + 65536] for at in range(0, len(stream), 65536)]
    raw.answers["m-gamma"] = [head, *(w for piece in pieces for w in (piece, 0.001))]
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "draw", "stream": True}) as resp:
        body = await resp.read()
    assert body.endswith(b'"}]}}\n\n') and b"event: error" not in body
    assert image in body
    await _all_slots_back(gateway, client)


async def test_a_usage_on_the_finish_chunk_is_billed_and_not_sent_to_a_client_that_never_asked(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    finish = (b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n')
    content = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    raw.answers["m-gamma"] = sse(content, finish, b"data: [DONE]\n\n")
    gateway = await start_gateway(upstream_url=raw.url)
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200 and b'"usage"' not in body and b'"finish_reason":"stop"' in body
    await wait_for(lambda: len(ledger_rows(gateway)) == 1)
    [row] = ledger_rows(gateway)
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (
        7, 3, "reported")


def _final_split(pause: float, then: bytes) -> Writes:
    """A Responses stream whose final event's `event:` line comes in a read of its own,
    then, `pause` seconds later, `then` (its data line, or the connection cut)."""
    created, completed = _response_events(True, b"")
    name = completed.partition(b"\n")[0]
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n"
    return [head, chunk % (len(created), created), 0.05, chunk % (len(name) + 1, name + b"\n"),
            pause, then]


async def test_a_final_event_whose_data_comes_after_its_name_reaches_the_client_whole(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # Its name alone had been taken for the end: the data came after the wait for the
    # body's end, and was dropped.
    _, completed = _response_events(True, b"")
    data = completed.partition(b"\n")[2]
    raw.answers["m-gamma"] = [*_final_split(1.5, b"%x\r\n%s\r\n" % (len(data), data)),
                              b"0\r\n\r\n"]
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "stream": True}) as resp:
        body = await resp.read()
    assert b'event: response.completed\ndata: {"type":"response.completed"' in body
    assert body.endswith(b"}}\n\n") and b"event: error" not in body


async def test_an_error_event_s_name_alone_then_the_stream_s_end_is_one_failure_of_the_model(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    created, _ = _response_events(True, b"")
    raw.answers["m-gamma"] = sse(created, b"event: error\n")
    gateway = await start_gateway(upstream_url=raw.url)
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "stream": True}) as resp:
        assert b"event: error\nevent: error\ndata: " in await resp.read()
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        errors = [line for line in (await resp.text()).splitlines()
                  if line.startswith("hxgw_upstream_errors_total{") and 'model="gamma"' in line
                  and not line.endswith(" 0.0")]
    assert errors == ['hxgw_upstream_errors_total{kind="stream_error",model="gamma"} 1.0']


async def test_a_stream_cut_between_its_final_event_s_name_and_data_ends_with_an_error_event(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    raw.answers["m-gamma"] = _final_split(0.05, b"-")  # a bad chunk: the upstream breaks
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "stream": True}) as resp:
        body = await resp.read()
    # The error's name in place of the open event's: one event, the SDK's APIError.
    assert b"event: response.completed\nevent: error\ndata: " in body
    await _all_slots_back(gateway, client)


async def test_an_event_cut_before_its_data_line_is_not_sent_as_an_event_without_data(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # The openai SDK parses an event without data as JSON, and fails with a
    # JSONDecodeError where it would raise the APIError of the gateway's error event.
    first, _ = _response_events(True, b"")
    cut = b"event: response.output_item.added\n"
    raw.answers["m-gamma"] = [*sse(first, cut)[:-1], 0.05, b"-"]  # then the upstream breaks
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "stream": True}) as resp:
        body = await resp.read()
    assert body.count(b"\n\n") == 2  # the first event, then the error event: no other
    assert body.partition(b"\n\n")[2].startswith(cut + b"event: error\ndata: ")


async def test_the_trailer_fields_of_an_answer_never_reach_the_next_answer_on_its_connection(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # A chunked body may end with trailer fields; the next request reuses the connection.
    raw.answers["m-gamma"] = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n" % (len(OK), OK)
                              + b"Content-Type: text/event-stream\r\n"
                              b"x-ratelimit-remaining-requests: 0\r\n\r\n"]
    assert (await _chat(client, gateway, model="solo"))[2] == OK
    raw.answers["m-gamma"] = whole(b"200 OK", OK)
    status, headers, body = await _chat(client, gateway, model="solo")
    assert (status, headers["Content-Type"], body) == (200, "application/json", OK)
    assert "x-ratelimit-remaining-requests" not in headers
    await _all_slots_back(gateway, client)


async def test_an_endless_trailer_is_refused_past_the_head_s_limit_not_parsed_on(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # httptools joins a trailer's value piece by piece, as a head's: 100 MB of it held
    # the event loop for 11 s, every client with it.
    raw.answers["m-gamma"] = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n"
                              % (len(OK), OK) + b"X-Trailer: "]
    raw.answers["m-gamma"] += [b"a" * 8192, 0.005] * 40  # 320 KiB, and no end
    with pytest.raises(aiohttp.ClientPayloadError):  # relayed as it came, then cut: told
        await _chat(client, gateway, model="solo")
    assert "chunk framing or trailer" in gateway.logs()
    raw.answers["m-gamma"] = whole(b"200 OK", OK)
    assert (await _chat(client, gateway, model="solo"))[2] == OK
    await _all_slots_back(gateway, client)


async def test_trailers_under_the_limit_on_one_connection_do_not_add_up_to_a_refusal(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # The count of framing bytes had carried over from one answer to the next.
    trailer = b"0\r\nX-Trailer: " + b"a" * 30_000 + b"\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw.answers["m-gamma"] = [head, 0.01, trailer[:-4], 0.01, trailer[-4:]]  # an empty body
    for _ in range(4):  # on one kept-alive connection
        assert (await _chat(client, gateway, model="solo"))[::2] == (200, b"")
    await _all_slots_back(gateway, client)


async def test_an_answer_s_trailer_fields_do_not_count_against_the_next_answer_s_head(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # 100 trailer fields, then a head of 40 on the same connection: each under the 128 a
    # head may have, together over it.
    trailer = b"".join(b"X-Trailer-%d: t\r\n" % i for i in range(100))
    raw.answers["m-gamma"] = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n"
                              % (len(OK), OK) + trailer + b"\r\n"]
    assert (await _chat(client, gateway, model="solo"))[::2] == (200, OK)
    fields = b"".join(b"X-Field-%d: f\r\n" % i for i in range(40))
    raw.answers["m-gamma"] = whole(b"200 OK", OK, fields)
    assert (await _chat(client, gateway, model="solo"))[::2] == (200, OK)
    await _all_slots_back(gateway, client)


async def test_a_204_labelled_as_an_event_stream_reaches_the_client_without_a_body(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    raw.answers["m-gamma"] = [b"HTTP/1.1 204 No Content\r\nContent-Type: text/event-stream\r\n\r\n"]
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert (status, body) == (204, b"")
    # The client's connection is still in step: its next request is answered.
    raw.answers["m-gamma"] = whole(b"200 OK", OK)
    assert (await _chat(client, gateway, model="solo"))[::2] == (200, OK)
    await _all_slots_back(gateway, client)


async def test_a_request_the_upstream_read_and_then_dropped_is_not_sent_to_it_again(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    tried: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = (await read_request(reader)).partition(b"\r\n\r\n")[2]
            tried.append(json.loads(body).get("model", "") if body else "")
            if tried[-1] == "m-alpha" and tried.count("m-alpha") == 2:
                # On a kept-alive connection: read whole, worked on, then its worker dies.
                await asyncio.sleep(1)
                writer.transport.abort()
                return
            writer.write(whole(b"200 OK", OK)[0])
            await writer.drain()

    async with serving(serve) as server:
        gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{server.origin.port}")
        assert (await _chat(client, gateway, model="chat"))[1]["X-HX-Model"] == "alpha"
        status, headers, _ = await _chat(client, gateway, model="chat")
        assert (status, headers["X-HX-Model"]) == (200, "beta")  # failed over, as for any reset
        assert tried.count("m-alpha") == 2
        await _all_slots_back(gateway, client)


@pytest.mark.parametrize("opening", [b"", b": OPENROUTER PROCESSING\n\n"])
async def test_an_event_stream_that_ends_before_any_answer_fails_over(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession, opening: bytes
):
    raw.answers["m-alpha"] = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(opening), opening)]
    said = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    raw.answers["m-beta"] = sse(said, b"data: [DONE]\n\n")
    status, headers, body = await _chat(client, gateway, model="chat", stream=True)
    assert (status, headers["X-HX-Model"], headers["X-HX-Failovers"]) == (200, "beta", "1")
    assert body == said + b"data: [DONE]\n\n"
    await _all_slots_back(gateway, client)


async def test_a_stream_whose_body_stays_open_after_done_ends_whole_for_the_client(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    said = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    raw.answers["m-gamma"] = sse(said, b"data: [DONE]\n\n")[:-1]  # never the body's last chunk
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert (status, body) == (200, said + b"data: [DONE]\n\n")  # no error event after [DONE]
    await _all_slots_back(gateway, client)
    assert "upstream failed" not in gateway.logs()  # the model answered: nothing against it


async def test_a_messages_stream_whose_body_stays_open_after_message_stop_ends_whole(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    delta = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":"hi"}}\n\n')
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    raw.answers["m-gamma"] = sse(delta, stop)[:-1]  # never the body's last chunk
    body = await _messages_stream(client, gateway)
    assert body == delta + stop  # no error event after message_stop
    assert "upstream failed" not in gateway.logs()


@pytest.mark.parametrize("same_read", [False, True])
async def test_events_an_upstream_sends_after_message_stop_are_not_relayed(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession, same_read: bool
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # The anthropic SDKs raise on an `error` event wherever it comes: one after the final
    # event had thrown away a whole answer.
    delta = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":"hi"}}\n\n')
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    late = b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"late"}}\n\n'
    raw.answers["m-gamma"] = sse(delta, stop + late) if same_read else sse(delta, stop, late)
    body = await _messages_stream(client, gateway)
    assert body == delta + stop
    assert "outcome=ok" in await _access_line(gateway, "POST /v1/messages")


async def test_a_final_event_whose_crlf_is_split_between_reads_keeps_its_data(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # The LF that ends the `event:` line had been taken for the blank line ending the
    # event, and the data line after it cut off: the SDK never saw message_stop.
    delta = (b'event: content_block_delta\r\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":"hi"}}\r\n\r\n')
    name, data = b"event: message_stop\r", b'\ndata: {"type":"message_stop"}\r\n\r\n'
    raw.answers["m-gamma"] = sse(delta, name, data)
    assert await _messages_stream(client, gateway) == delta + name + data


async def test_a_stream_whose_connection_breaks_after_done_ends_whole_for_the_client(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    said = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    raw.answers["m-gamma"] = [*sse(said, b"data: [DONE]\n\n")[:-1], b"zz\r\n"]  # a bad chunk
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert (status, body) == (200, said + b"data: [DONE]\n\n")  # no error event after [DONE]
    await _all_slots_back(gateway, client)
    assert "upstream failed" not in gateway.logs()


async def test_a_file_a_response_cites_reaches_the_client_by_the_id_its_files_routes_know(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # file_search cites the upstream's own id, which the gateway's files routes refuse.
    cited = {"type": "file_citation", "file_id": "file-up", "filename": "a.pdf", "index": 0}
    said = {"id": "resp_up", "object": "response", "status": "completed", "output": [
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "x", "annotations": [cited]}]}]}
    raw.answers["m-gamma"] = whole(b"200 OK", json.dumps(said).encode())
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "what does a.pdf say?"}) as resp:
        answer = await resp.json()
    (annotation,) = answer["output"][0]["content"][0]["annotations"]
    assert unbind(annotation["file_id"]) == ("upstream", "default", "file-up")


async def _messages_stream(client: aiohttp.ClientSession, gateway: Gateway) -> bytes:
    """The body of a streamed Messages request to the one-model group `solo`."""
    async with client.post(gateway.url + "/v1/messages", headers=gateway.auth, json={
            "model": "solo", "max_tokens": 9, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}) as resp:
        return await resp.read()


async def test_a_background_response_whose_id_is_past_what_an_index_holds_is_billed(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession,
    postgres_url: str,  # noqa: F811 -- the fixture
):
    # PostgreSQL indexes keys of at most 2704 bytes, and a billed-apart row's key holds
    # the response's id (bound, a third longer than the upstream's): the row was refused.
    ident = "resp_" + secrets.token_urlsafe(3000)
    done = {"id": ident, "object": "response", "status": "completed", "background": True,
            "created_at": int(time.time()), "output": [],
            "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}}
    raw.answers["m-gamma"] = whole(b"200 OK", json.dumps(done).encode())
    gateway = await start_gateway(upstream_url=raw.url, env={"DATABASE_URL": postgres_url})
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "background": True}) as resp:
        assert resp.status == 200
        made = (await resp.json())["id"]

    def billed() -> list[tuple[str, int, int]]:
        with psycopg.connect(postgres_url) as connection:
            try:
                return [(str(r[0]), int(r[1]), int(r[2])) for r in connection.execute(
                    "SELECT request_id, prompt_tokens, completion_tokens FROM usage_ledger"
                    " WHERE request_id LIKE 'usage-of-%'")]
            except psycopg.errors.UndefinedTable:  # the ledger's writer makes it next
                return []

    await wait_for(lambda: bool(billed()), timeout=10)
    [(request_id, prompt, completion)] = billed()
    assert (prompt, completion) == (7, 3)
    assert request_id.startswith("usage-of-" + made[:64]) and len(request_id) < 2704


async def test_a_model_list_entry_nested_past_what_the_gateway_writes_leaves_the_list_whole(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # orjson reads 1024 levels and writes 254: every /v1/models had been a 500.
    deep = {"id": "m-alpha", "created": 1_700_000_000, "root": json.loads("[" * 300 + "]" * 300)}
    raw.answers[""] = whole(b"200 OK", json.dumps({"object": "list", "data": [deep]}).encode())
    async with client.get(gateway.url + "/v1/models", headers=gateway.auth) as resp:
        assert resp.status == 200
        (alpha,) = [e for e in (await resp.json())["data"] if e["id"] == "alpha"]
    assert alpha["created"] == 1_700_000_000 and "root" not in alpha


@pytest.mark.parametrize("said", [True, -5, 1_700_000_000_000, 2**62])
async def test_a_group_is_dated_by_its_models_times_in_seconds_alone(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession, said: int
):
    # Each was the group's `created` as it came (a bool is an int to Python; milliseconds
    # dated it in the year 55,800). A model's time is in seconds, or the group's is when
    # its config was loaded, as for models that say none.
    listed = [{"id": "m-alpha", "created": said}, {"id": "m-beta"}]
    raw.answers[""] = whole(b"200 OK", json.dumps({"object": "list", "data": listed}).encode())
    before = int(time.time())
    gateway = await start_gateway(upstream_url=raw.url)  # its config loaded after `before`
    async with client.get(gateway.url + "/v1/models/chat", headers=gateway.auth) as resp:
        created = (await resp.json())["created"]
    assert type(created) is int
    if said == 1_700_000_000_000:
        assert created == 1_700_000_000
    else:
        assert before <= created <= time.time()


async def test_a_finish_chunk_with_the_usage_nested_past_what_the_gateway_writes_goes_on_whole(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # The usage is cut out of the chunk, which is then written again: past 254 levels
    # orjson raised, and the stream broke off before its finish with no error event.
    deep = b"[" * 300 + b"]" * 300
    finish = (b'data: {"id":"c1","x":' + deep + b',"choices":[{"index":0,"delta":{},'
              b'"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,'
              b'"total_tokens":10}}\n\n')
    content = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    raw.answers["m-gamma"] = sse(content, finish, b"data: [DONE]\n\n")
    gateway = await start_gateway(upstream_url=raw.url)
    status, _, body = await _chat(client, gateway, model="solo", stream=True)
    assert status == 200 and body == content + finish + b"data: [DONE]\n\n"
    await wait_for(lambda: len(ledger_rows(gateway)) == 1)
    [row] = ledger_rows(gateway)
    assert (row["outcome"], row["prompt_tokens"], row["completion_tokens"]) == ("ok", 7, 3)


async def test_a_background_response_whose_usage_nests_past_what_the_gateway_writes_is_billed(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # Its usage is written again to be read: past 254 levels orjson raised, and the row
    # was lost, with a traceback, after the client had its answer.
    usage = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10,
             "x": json.loads("[" * 300 + "]" * 300)}
    done = {"id": "resp_1", "object": "response", "status": "completed", "background": True,
            "created_at": int(time.time()), "output": [], "usage": usage}
    raw.answers["m-gamma"] = whole(b"200 OK", json.dumps(done).encode())
    gateway = await start_gateway(upstream_url=raw.url)
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "background": True}) as resp:
        assert resp.status == 200

    def billed() -> list[dict[str, object]]:
        return [r for r in ledger_rows(gateway) if r["request_id"].startswith("usage-of-")]

    await wait_for(lambda: bool(billed()), timeout=10)
    [row] = billed()
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 3)
    assert "Traceback" not in gateway.logs()


async def test_a_message_whose_usage_nests_past_what_the_gateway_writes_is_billed_its_count(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # A usage found by parsing the answer (a member that nests follows it) is written
    # again to be read: past 254 levels orjson raised, after the client had its answer.
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m-gamma",
              "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
              "usage": {"input_tokens": 7, "output_tokens": 3,
                        "x": json.loads('{"a":' * 300 + "1" + "}" * 300)},
              "container": {"id": "c1", "skills": []}}
    raw.answers["m-gamma"] = whole(b"200 OK", json.dumps(answer).encode())
    gateway = await start_gateway(upstream_url=raw.url)
    async with client.post(gateway.url + "/v1/messages", headers=gateway.auth, json={
            "model": "solo", "max_tokens": 9,
            "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1)
    [row] = ledger_rows(gateway)
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (
        7, 3, "reported")
    assert "Traceback" not in gateway.logs()


@pytest.mark.parametrize(("status", "body"), [
    (b"500 Internal Server Error", b'{"error":{"message":%s}}'),
    (b"429 Too Many Requests", b'{"error":{"message":%s}}'),
    (b"200 OK", b'{"error":%s}'),  # an error in a 200, as some providers send one
])
async def test_an_error_whose_message_nests_past_what_python_prints_fails_over(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession,
    status: bytes, body: bytes,
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # orjson reads 1024 levels, Python's str() of them recursed past its limit: the
    # request was a 500 where the next candidate would serve it.
    raw.answers["m-alpha"] = whole(status, body % (b"[" * 1020 + b"]" * 1020))
    answered, headers, _ = await _chat(client, gateway, model="chat")
    assert (answered, headers["X-HX-Model"]) == (200, "beta")
    assert "Traceback" not in gateway.logs()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_response_whose_object_is_no_string_is_relayed_not_a_500(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession, stream: bool
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # Looked up in a set, a list raised TypeError (unhashable): a 500 for the whole
    # answer, and a stream that ended before its first byte.
    said = {"id": "resp_1", "object": ["response"], "status": "completed", "output": []}
    done = {"type": "response.completed", "response": said}
    raw.answers["m-gamma"] = (
        sse(b"event: response.completed\ndata: " + json.dumps(done).encode() + b"\n\n")
        if stream else whole(b"200 OK", json.dumps(said).encode()))
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "stream": stream}) as resp:
        assert resp.status == 200
        assert b'"resp_1"' in await resp.read()  # no response of a model's: not bound
    assert "Traceback" not in gateway.logs()


async def test_a_list_of_files_whose_item_s_object_is_no_string_reaches_the_master_key(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # Looked up in a set, an object in its place raised TypeError: every list was a 500.
    listed = {"object": "list", "data": [{"id": "file-1", "object": {"kind": "file"}}]}
    raw.answers[""] = whole(b"200 OK", json.dumps(listed).encode())
    async with client.get(gateway.url + "/v1/files", headers=gateway.auth) as resp:
        assert resp.status == 200
        assert (await resp.json()) == listed  # no file of the files API's: nothing bound
    assert "Traceback" not in gateway.logs()


async def test_a_background_response_whose_status_is_no_string_is_answered_and_recorded(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # Looked up in a set, a list raised TypeError as the row was made: the client's
    # answer was a 500.
    said = {"id": "resp_1", "object": "response", "status": ["completed"], "background": True,
            "created_at": int(time.time()), "output": [],
            "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}}
    raw.answers["m-gamma"] = whole(b"200 OK", json.dumps(said).encode())
    gateway = await start_gateway(upstream_url=raw.url)
    async with client.post(gateway.url + "/v1/responses", headers=gateway.auth,
                           json={"model": "solo", "input": "hi", "background": True}) as resp:
        assert resp.status == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1)
    assert "Traceback" not in gateway.logs()


async def test_a_batch_whose_status_is_no_string_is_answered_and_bills_nothing(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # Looked up among the ended statuses, an object raised TypeError: a 500.
    made = {"id": "batch_1", "object": "batch", "status": {"completed": True},
            "created_at": int(time.time()), "input_file_id": "file-in",
            "usage": {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}}
    raw.answers[""] = whole(b"200 OK", json.dumps(made).encode())
    gateway = await start_gateway(upstream_url=raw.url)
    async with client.post(gateway.url + "/v1/batches", headers=gateway.auth, json={
            "input_file_id": bind("upstream", "default", "file-in"),
            "endpoint": "/v1/chat/completions", "completion_window": "24h"}) as resp:
        assert resp.status == 200
    await wait_for(lambda: len(ledger_rows(gateway)) == 1)  # the request's; none billed
    assert "Traceback" not in gateway.logs()


async def test_a_stream_opening_a_block_whose_type_is_no_string_is_relayed_as_its_answer(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # Judged whether it opens an empty block of text (while another candidate remains),
    # its type was looked up in a set: a list raised TypeError, and the client got a 500.
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
             b'"type":"message","role":"assistant","content":[],"usage":{"input_tokens":1,'
             b'"output_tokens":1}}}\n\n')
    block = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
             b'"content_block":{"type":["text"],"text":""}}\n\n')
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    raw.answers["m-alpha"] = sse(start, block, stop)
    async with client.post(gateway.url + "/v1/messages", headers=gateway.auth, json={
            "model": "chat", "max_tokens": 9, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert (resp.status, resp.headers["X-HX-Model"]) == (200, "alpha")
        assert await resp.read() == start + block + stop
    assert "Traceback" not in gateway.logs()


async def test_a_prompt_too_long_whose_message_nests_past_what_python_prints_fails_over(
    start_gateway: StartGateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    gateway = await start_gateway(upstream_url=raw.url)  # it reads the log
    # Its code and message were put in one text to look for the marks: str() of the
    # message recursed past Python's limit, and the request was a 500.
    deep = b"[" * 1020 + b"]" * 1020
    raw.answers["m-alpha"] = whole(b"400 Bad Request", b'{"error":{"code":"context_length_exceeded",'
                                   b'"message":' + deep + b'}}')
    answered, headers, _ = await _chat(client, gateway, model="chat")
    assert (answered, headers["X-HX-Model"]) == (200, "beta")
    assert "Traceback" not in gateway.logs()


async def test_a_model_s_entry_keeps_none_of_the_gateway_s_own_fields_its_upstream_lists(
    gateway: Gateway, raw: RawUpstream, client: aiohttp.ClientSession
):
    # An upstream that is a gateway of this kind lists its groups so: a registry model
    # sent to its default group was listed here as a group, the default one (as
    # `hxgw smoke` picks one), its models the upstream's.
    listed = {"id": "m-alpha", "object": "model", "created": 1_700_000_000, "owned_by": "hxgw",
              "hx_group": True, "hx_models": ["theirs"], "hx_mode": "embedding",
              "hx_default": True}
    raw.answers[""] = whole(b"200 OK", json.dumps({"object": "list", "data": [listed]}).encode())
    async with client.get(gateway.url + "/v1/models/alpha", headers=gateway.auth) as resp:
        alpha = await resp.json()
    assert alpha == {"id": "alpha", "object": "model", "created": 1_700_000_000,
                     "owned_by": "hxgw", "hx_upstream_model": "m-alpha"}
