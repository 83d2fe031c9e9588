"""HTTP/1.1 on the wire: keep-alive, pipelining, framing, Expect, closing, bad requests.

Every test talks to the real `hxgw serve` process over a raw socket, so the exact bytes
sent are under the test's control and every byte of the answer is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
CHAT_PATH = "/v1/chat/completions"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
STREAM: dict[str, Any] = {**CHAT, "stream": True}
REPLY = "Hello there from the fake upstream"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


# -- raw HTTP on a socket ----------------------------------------------------------------------


@dataclass
class Response:
    version: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def closes(self) -> bool:
        return "close" in (self.header("Connection") or "").lower()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 5.0, *, to_head: bool = False) -> Response:
        """Read exactly one response (a 1xx counts as one), framed by Content-Length,
        chunked encoding or the end of the connection; only its head `to_head` a HEAD."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
            version, status, *_ = status_line.split(" ", 2)
            headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in lines)]
            response = Response(version, int(status), headers, b"")
            if to_head or response.status < 200 or response.status in (204, 304):
                return response
            if "chunked" in (response.header("Transfer-Encoding") or "").lower():
                response.body = await self._chunked_body()
            elif (length := response.header("Content-Length")) is not None:
                response.body = await self.reader.readexactly(int(length))
            else:
                response.body = await self.reader.read()
            return response

    async def _chunked_body(self) -> bytes:
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            assert await self.reader.readexactly(2) == b"\r\n", "chunk not ended by CRLF"
        while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return b"".join(parts)

    async def assert_closed(self, timeout: float = 2.0) -> None:
        """The gateway closes the connection without sending another byte."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except ConnectionResetError:
            return
        assert data == b"", f"expected the connection to close, got {data[:300]!r}"


@contextlib.asynccontextmanager
async def connect(gateway: Gateway) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        yield Connection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def request(
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    fields = {"Host": "x", **(headers or {})}
    if body and not {"content-length", "transfer-encoding"} & {k.lower() for k in fields}:
        fields["Content-Length"] = str(len(body))
    head = f"{method} {target} HTTP/{version}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n").encode() + body


def api_headers(gateway: Gateway, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The headers of an authorised JSON call, plus `extra`."""
    fields = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}
    return fields | (extra or {})


def chat(
    gateway: Gateway,
    body: dict[str, Any] = CHAT,
    *,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    version: str = "1.1",
) -> bytes:
    fields = api_headers(gateway)
    if request_id:
        fields["X-Request-ID"] = request_id
    return request(
        "POST",
        CHAT_PATH,
        headers={**fields, **(headers or {})},
        body=json.dumps(body).encode(),
        version=version,
    )


def assert_chat_reply(response: Response, request_id: str | None = None) -> None:
    assert response.status == 200, response
    assert response.json()["choices"][0]["message"]["content"] == REPLY
    if request_id is not None:
        assert response.header("X-Request-ID") == request_id


def assert_openai_error(response: Response, status: int) -> None:
    assert response.status == status, response
    assert (response.header("Content-Type") or "").startswith("application/json"), response
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= error.keys()
    assert isinstance(error["message"], str) and error["message"]


async def assert_still_serving(gateway: Gateway) -> None:
    async with connect(gateway) as conn:
        await conn.send(chat(gateway))
        assert_chat_reply(await conn.response())


# -- keep-alive and pipelining -----------------------------------------------------------------


async def test_three_chats_in_sequence_on_one_connection_each_get_a_complete_reply(
    gateway: Gateway, fake: FakeUpstream
):
    async with connect(gateway) as conn:
        for n in range(3):
            await conn.send(chat(gateway, request_id=f"seq-{n}"))
            assert_chat_reply(await conn.response(), f"seq-{n}")
    assert len(fake.requests) == 3


async def test_two_pipelined_chats_are_answered_completely_and_in_order(
    gateway: Gateway, fake: FakeUpstream
):
    # The first is the slower one upstream: answers must still come back in request order.
    fake.behave("m-alpha", header_delay=0.3)
    solo = {"X-HX-Model-Group": "solo"}
    async with connect(gateway) as conn:
        await conn.send(
            chat(gateway, request_id="first") + chat(gateway, request_id="second", headers=solo)
        )
        first, second = await conn.response(), await conn.response()
    assert_chat_reply(first, "first")
    assert_chat_reply(second, "second")
    assert second.header("X-HX-Model") == "gamma"


async def test_health_and_metrics_after_a_chat_on_one_connection_get_their_own_answers(
    gateway: Gateway,
):
    async with connect(gateway) as conn:
        await conn.send(chat(gateway))
        assert_chat_reply(await conn.response())
        await conn.send(HEALTHZ)
        health = await conn.response()
        await conn.send(
            request("GET", "/metrics", headers={"Authorization": f"Bearer {gateway.key}"})
        )
        metrics = await conn.response()
    assert (health.status, health.json()) == (200, {"status": "ok"})
    assert metrics.status == 200
    assert (metrics.header("Content-Type") or "").startswith("text/plain")
    assert b"# TYPE " in metrics.body


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/chat", "/models/alpha"])
async def test_head_of_a_models_route_gets_the_get_answers_head_and_no_body(
    gateway: Gateway, path: str
):
    auth = {"Authorization": f"Bearer {gateway.key}"}
    async with connect(gateway) as conn:
        await conn.send(request("GET", path, headers=auth))
        got = await conn.response()
        await conn.send(request("HEAD", path, headers=auth))
        head = await conn.response(to_head=True)
        await conn.send(HEALTHZ)  # a body sent with the HEAD's answer would be read as this
        health = await conn.response()
    assert (got.status, head.status) == (200, 200)
    assert head.header("Content-Length") == got.header("Content-Length")
    assert head.header("Content-Type") == got.header("Content-Type")
    assert (health.status, health.json()) == (200, {"status": "ok"})


async def test_head_of_a_route_the_upstream_answers_is_405_naming_the_methods(gateway: Gateway):
    auth = {"Authorization": f"Bearer {gateway.key}"}
    async with connect(gateway) as conn:
        await conn.send(request("HEAD", "/v1/files/file-abc", headers=auth))
        refused = await conn.response(to_head=True)
    assert refused.status == 405
    assert refused.header("Allow") == "DELETE, GET"


async def test_a_chat_after_a_health_check_on_one_connection_is_proxied(gateway: Gateway):
    async with connect(gateway) as conn:
        await conn.send(HEALTHZ)
        health = await conn.response()
        await conn.send(chat(gateway, request_id="after-health"))
        reply = await conn.response()
    assert (health.status, health.json()) == (200, {"status": "ok"})
    assert_chat_reply(reply, "after-health")


async def test_a_health_check_whose_head_arrives_in_pieces_after_a_chat_is_answered(
    gateway: Gateway,
):
    """The connection passes to aiohttp with every byte of the request, including reads
    that came before its target did."""
    async with connect(gateway) as conn:
        await conn.send(chat(gateway))
        assert_chat_reply(await conn.response())
        for piece in (HEALTHZ[:2], HEALTHZ[2:9], HEALTHZ[9:20], HEALTHZ[20:]):
            await conn.send(piece)
            await asyncio.sleep(0.05)
        health = await conn.response()
    assert (health.status, health.json()) == (200, {"status": "ok"})


async def test_a_health_check_pipelined_behind_a_chat_is_answered_or_refused_by_closing(
    gateway: Gateway,
):
    """RFC 9112 §9.3.2: a client retries pipelined requests left unanswered, so the gateway
    may close after the first answer, if it says so; it may never answer wrongly."""
    async with connect(gateway) as conn:
        await conn.send(chat(gateway, request_id="pipelined") + HEALTHZ)
        first = await conn.response()
        assert_chat_reply(first, "pipelined")
        if first.closes:
            await conn.assert_closed()
        else:
            second = await conn.response()
            assert (second.status, second.json()) == (200, {"status": "ok"})


# -- request framing ---------------------------------------------------------------------------


async def test_a_chunked_body_sent_in_pieces_reaches_the_upstream_intact(
    gateway: Gateway, fake: FakeUpstream
):
    body = {"messages": [{"role": "user", "content": "chunked " * 50}], "temperature": 0.5}
    data = json.dumps(body).encode()
    pieces = [data[i : i + 100] for i in range(0, len(data), 100)]
    head = request(
        "POST",
        CHAT_PATH,
        headers=api_headers(gateway, {"Transfer-Encoding": "chunked"}),
    )
    async with connect(gateway) as conn:
        await conn.send(head)
        for piece in pieces:
            await asyncio.sleep(0.02)
            await conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await conn.send(b"0\r\n\r\n")
        assert_chat_reply(await conn.response())
    assert len(pieces) > 3
    seen = fake.requests[-1].body
    assert {k: v for k, v in seen.items() if k != "model"} == body


async def test_expect_100_continue_gets_100_before_the_body_then_the_answer(gateway: Gateway):
    data = json.dumps(CHAT).encode()
    head = request(
        "POST",
        CHAT_PATH,
        headers=api_headers(gateway, {"Content-Length": str(len(data)), "Expect": "100-continue"}),
    )
    async with connect(gateway) as conn:
        await conn.send(head)
        interim = await conn.response(timeout=2)
        await conn.send(data)
        final = await conn.response()
    assert (interim.version, interim.status, interim.body) == ("HTTP/1.1", 100, b"")
    assert_chat_reply(final)


async def test_an_http_1_0_client_s_expect_is_ignored_and_gets_no_100(gateway: Gateway):
    # RFC 9110 (10.1.1, 15.2): a 1xx must not go to an HTTP/1.0 client.
    data = json.dumps(CHAT).encode()
    head = request(
        "POST",
        CHAT_PATH,
        headers=api_headers(gateway, {"Content-Length": str(len(data)), "Expect": "100-continue"}),
        version="1.0",
    )
    async with connect(gateway) as conn:
        await conn.send(head)
        await asyncio.sleep(0.3)  # as long as the gateway waits for a body it asked for
        await conn.send(data)
        final = await conn.response()
    assert final.status == 200
    assert_chat_reply(final)


async def test_expect_100_continue_over_the_body_limit_gets_413_without_a_100(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"limits": {"max_body_bytes": 1000}})
    head = request(
        "POST",
        CHAT_PATH,
        headers=api_headers(gateway, {"Content-Length": "10000000", "Expect": "100-continue"}),
    )
    async with connect(gateway) as conn:
        await conn.send(head)
        assert_openai_error(await conn.response(), 413)
    assert fake.requests == []


# -- closing -----------------------------------------------------------------------------------


async def test_connection_close_from_the_client_gets_a_complete_reply_then_a_close(
    gateway: Gateway,
):
    async with connect(gateway) as conn:
        await conn.send(chat(gateway, headers={"Connection": "close"}))
        assert_chat_reply(await conn.response())
        await conn.assert_closed()


async def test_an_http_1_0_request_without_keep_alive_is_answered_then_closed(
    gateway: Gateway,
):
    async with connect(gateway) as conn:
        await conn.send(chat(gateway, version="1.0"))
        reply = await conn.response()
        await conn.assert_closed()
    assert_chat_reply(reply)
    assert reply.header("Transfer-Encoding") is None  # HTTP/1.0 has no chunked encoding


async def test_an_http_1_0_stream_asked_to_keep_alive_ends_by_closing_its_connection(
    gateway: Gateway,
):
    # HTTP/1.0 has no chunked framing: a body of no length ends only with the connection.
    async with connect(gateway) as conn:
        await conn.send(chat(gateway, STREAM, version="1.0",
                             headers={"Connection": "keep-alive"}))
        reply = await conn.response()  # read to the connection's end
    assert reply.status == 200 and reply.body.endswith(b"data: [DONE]\n\n")
    assert reply.header("Content-Length") is None  # and no "Connection: keep-alive" either
    assert "keep-alive" not in (reply.header("Connection") or "").lower()


async def test_an_idle_keep_alive_connection_is_closed_after_the_client_idle_timeout(
    start_gateway: StartGateway,
):
    gateway = await start_gateway(gateway={"limits": {"client_idle_timeout": 1}})
    async with connect(gateway) as conn:
        await conn.send(chat(gateway))
        assert_chat_reply(await conn.response())
        answered = time.monotonic()
        await conn.assert_closed(timeout=4)
    assert 0.8 < time.monotonic() - answered < 3


# -- bad requests ------------------------------------------------------------------------------


MALFORMED = {
    "request-line": b"GARBAGE\r\n\r\n",
    "header-without-colon": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
}
BIG_HEADER = request(
    "POST", CHAT_PATH, headers={"X-Big": "a" * 100_000}, body=json.dumps(CHAT).encode()
)


@pytest.mark.parametrize("garbage", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_gets_400_and_a_close_and_others_are_still_served(
    gateway: Gateway, garbage: bytes
):
    async with connect(gateway) as conn:
        await conn.send(garbage)
        answer = await conn.response()
        await conn.assert_closed()
    assert answer.status == 400
    await assert_still_serving(gateway)


async def test_a_100_kb_header_gets_400_or_431_and_others_are_still_served(gateway: Gateway):
    async with connect(gateway) as conn:
        with contextlib.suppress(ConnectionError):
            await conn.send(BIG_HEADER)  # the gateway may answer before reading it all
        answer = await conn.response()
    assert answer.status in (400, 431)
    await assert_still_serving(gateway)


@pytest.mark.parametrize(
    "raw", [*MALFORMED.values(), BIG_HEADER], ids=[*MALFORMED.keys(), "100-kb-header"]
)
async def test_a_request_the_parser_rejects_gets_an_openai_error_from_hxgw(
    gateway: Gateway, raw: bytes
):
    async with connect(gateway) as conn:
        with contextlib.suppress(ConnectionError):
            await conn.send(raw)
        answer = await conn.response()
    assert answer.header("Server") == "hxgw"
    assert_openai_error(answer, answer.status)
    assert answer.status in (400, 431)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0"])
async def test_a_request_line_of_another_http_version_gets_505_and_a_close(
    gateway: Gateway, version: bytes
):
    async with connect(gateway) as conn:
        await conn.send(HEALTHZ.replace(b"HTTP/1.1", version))
        answer = await conn.response()
        await conn.assert_closed()
    assert answer.version != version.decode()  # not framed as what it cannot be
    assert_openai_error(answer, 505)
    assert answer.json()["error"]["code"] == "http_version_not_supported"
    await assert_still_serving(gateway)


async def test_a_request_of_another_version_with_a_request_behind_it_gets_505(gateway: Gateway):
    async with connect(gateway) as conn:
        await conn.send(HEALTHZ.replace(b"HTTP/1.1", b"HTTP/2.0") + HEALTHZ)
        answer = await conn.response()
        await conn.assert_closed()
    assert_openai_error(answer, 505)


async def test_an_http_2_client_with_prior_knowledge_is_told_505_not_400(gateway: Gateway):
    async with connect(gateway) as conn:
        await conn.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        answer = await conn.response()
    assert_openai_error(answer, 505)
    assert "HTTP/2" in answer.json()["error"]["message"]


ERRORS = {
    "401-no-key": (401, request("POST", CHAT_PATH, body=json.dumps(CHAT).encode())),
    "404-unknown-path": (404, request("GET", "/v1/no-such-route")),
    "405-wrong-method": (405, request("GET", CHAT_PATH)),
}


@pytest.mark.parametrize(("status", "raw"), ERRORS.values(), ids=ERRORS.keys())
async def test_an_error_answer_is_openai_json_and_keeps_the_connection_usable(
    gateway: Gateway, status: int, raw: bytes
):
    async with connect(gateway) as conn:
        await conn.send(raw)
        error = await conn.response()
        assert_openai_error(error, status)
        if error.closes:
            await conn.assert_closed()
        else:
            await conn.send(chat(gateway))
            assert_chat_reply(await conn.response())


async def test_a_client_leaving_mid_body_does_not_disturb_a_stream_on_another_connection(
    gateway: Gateway, fake: FakeUpstream
):
    gate = asyncio.Event()
    fake.behave("m-alpha", content="one two three", gate=gate)
    whole = chat(gateway)
    half_body = whole[: len(whole) - len(json.dumps(CHAT)) // 2]
    async with connect(gateway) as streaming:
        await streaming.send(chat(gateway, STREAM))
        await wait_for(lambda: len(fake.requests) == 1)
        async with connect(gateway) as leaving:
            await leaving.send(half_body)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        gate.set()
        reply = await streaming.response()
    assert reply.status == 200
    assert reply.body.endswith(b"data: [DONE]\n\n")
    assert b"event: error" not in reply.body
    assert len(fake.requests) == 1


# -- response headers and framing --------------------------------------------------------------


async def test_a_compressed_body_no_route_reads_is_left_unread_and_its_connection_closed(
    gateway: Gateway,
):
    # aiohttp would inflate it to discard it: 2 GB from 2 MB, on the event loop, no key.
    bomb = gzip.compress(bytes(70 * 1024 * 1024), compresslevel=1)  # past what is read
    async with connect(gateway) as conn:
        await conn.send(request("GET", "/healthz", body=bomb,
                                headers={"Content-Encoding": "gzip"}))
        reply = await conn.response()
        assert reply.status == 200 and reply.closes
        await conn.assert_closed()


async def test_a_401_to_a_large_compressed_upload_reaches_an_sdk_s_http_library(
    gateway: Gateway,
):
    # httpx, under both Python SDKs, sends the whole body before it reads: closed on the
    # bytes still coming, the connection reset, and it lost the 401 to a ReadError.
    body = gzip.compress(os.urandom(8 * 1024 * 1024), compresslevel=0)  # 8 MiB to send
    headers = {"Authorization": "Bearer sk-wrong-but-long-enough-1234", "Content-Encoding": "gzip",
               "Content-Type": "application/json"}
    async with httpx.AsyncClient() as client:
        for _ in range(2):  # and again on the same connection
            answer = await client.post(gateway.url + CHAT_PATH, content=body, headers=headers)
            assert answer.status_code == 401


@pytest.mark.parametrize("waits", ["for 100-continue", "mid-body"])
async def test_a_401_to_a_compressed_body_the_client_does_not_send_whole_comes_without_it(
    gateway: Gateway, waits: str
):
    # Its answer had waited for a body that was not coming: the client idle timeout.
    body = gzip.compress(b'{"model":"x","messages":[]}' * 1000)
    headers = {"Authorization": "Bearer sk-wrong-but-long-enough-1234",
               "Content-Type": "application/json", "Content-Encoding": "gzip",
               "Content-Length": str(len(body))}
    sent = b""
    if waits == "for 100-continue":
        headers["Expect"] = "100-continue"
    else:
        sent = body[:100]  # and then nothing
    async with connect(gateway) as conn:
        await conn.send(request("POST", CHAT_PATH, headers=headers) + sent)
        assert (await conn.response(timeout=10)).status == 401


async def test_an_undecodable_body_no_route_reads_logs_no_traceback(gateway: Gateway):
    since = len(gateway.logs())
    async with connect(gateway) as conn:
        await conn.send(request("GET", "/healthz", body=b"{}",
                                headers={"Content-Encoding": "gzip"}))
        assert (await conn.response()).status == 200
        await conn.assert_closed()
    await asyncio.sleep(0.2)  # what aiohttp logs after the answer
    assert "Traceback" not in gateway.logs()[since:]


async def test_a_plain_chat_reply_names_hxgw_and_has_a_date_and_a_json_content_type(
    gateway: Gateway,
):
    async with connect(gateway) as conn:
        await conn.send(chat(gateway))
        reply = await conn.response()
    assert_chat_reply(reply)
    assert reply.header("Server") == "hxgw"
    assert abs(parsedate_to_datetime(reply.header("Date") or "").timestamp() - time.time()) < 60
    assert (reply.header("Content-Type") or "").startswith("application/json")


async def test_a_streamed_chat_reply_is_a_chunked_event_stream_ending_with_done(
    gateway: Gateway,
):
    async with connect(gateway) as conn:
        await conn.send(chat(gateway, STREAM))
        reply = await conn.response()
    assert reply.status == 200
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.header("Content-Length") is None
    assert (reply.header("Content-Type") or "").startswith("text/event-stream")
    assert reply.header("Server") == "hxgw"
    assert reply.body.endswith(b"data: [DONE]\n\n")


async def test_a_streamed_reply_tells_a_proxy_in_front_neither_to_buffer_nor_to_cache_it(
    gateway: Gateway,
):
    # nginx buffers a proxied answer unless told not to: a chat front end behind it saw
    # no token until the whole answer had come.
    async with connect(gateway) as conn:
        await conn.send(chat(gateway, STREAM))
        reply = await conn.response()
    assert (reply.header("X-Accel-Buffering"), reply.header("Cache-Control")) == ("no", "no-cache")


# -- shutdown ----------------------------------------------------------------------------------


def accept_queues(port: int) -> list[int]:
    """How many connections wait in the accept queue of each socket listening on `port`
    (for a listening socket, /proc/net/tcp's rx_queue column is that count)."""
    queues = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
            queues.append(int(fields[4].partition(":")[2], 16))
    return queues


async def stop_listening(gateway: Gateway) -> None:
    """SIGTERM, and wait until the gateway has closed its listener and begun draining."""
    gateway.signal(signal.SIGTERM)
    await wait_for(lambda: not accept_queues(gateway.port) and "stopping" in gateway.logs())
    await asyncio.sleep(0.1)  # idle connections are closed just after the listener


async def test_a_client_that_connected_before_sigterm_gets_its_first_request_answered(
    own_gateway: Gateway,
):
    gateway = own_gateway  # SIGTERM stops it
    async with connect(gateway) as conn:
        await wait_for(lambda: accept_queues(gateway.port) == [0])  # accepted, not queued
        await stop_listening(gateway)
        await conn.send(chat(gateway))
        reply = await conn.response()
        assert_chat_reply(reply)
        assert reply.closes
        await conn.assert_closed()
    assert gateway.process is not None and gateway.process.wait(10) == 0


async def test_a_request_head_arriving_across_sigterm_is_answered_then_closed(
    own_gateway: Gateway,
):
    gateway = own_gateway  # SIGTERM stops it
    whole = chat(gateway)
    async with connect(gateway) as conn:
        await conn.send(whole[:30])
        await wait_for(lambda: accept_queues(gateway.port) == [0])
        await stop_listening(gateway)
        await conn.send(whole[30:])
        reply = await conn.response()
        assert_chat_reply(reply)
        assert reply.closes
    assert gateway.process is not None and gateway.process.wait(10) == 0


async def test_a_request_under_way_when_sigterm_comes_is_answered_with_a_close(
    own_gateway: Gateway, fake: FakeUpstream
):
    # A proxy that keeps its connections to the gateway sends its next request down one
    # that is not told it will close, and gets nothing back.
    gateway = own_gateway  # SIGTERM stops it
    fake.behave("m-alpha", header_delay=1.0)
    async with connect(gateway) as conn:
        await conn.send(chat(gateway))
        await wait_for(lambda: len(fake.requests) == 1)
        gateway.signal(signal.SIGTERM)
        reply = await conn.response()
        assert_chat_reply(reply)
        assert reply.closes
    assert gateway.process is not None and gateway.process.wait(10) == 0


async def test_a_connection_that_never_sends_a_request_does_not_hold_up_shutdown(
    own_gateway: Gateway,
):
    gateway = own_gateway  # SIGTERM stops it
    async with connect(gateway) as conn:
        await wait_for(lambda: accept_queues(gateway.port) == [0])
        gateway.signal(signal.SIGTERM)
        await conn.assert_closed(timeout=10)
    assert gateway.process is not None and gateway.process.wait(10) == 0
