"""The gateway's whole answers: what goes on the wire, and which answers are left to
aiohttp's own `web.Response`."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_writer import HttpVersion10, StreamWriter
from aiohttp.test_utils import make_mocked_request

from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.whole_response import WholeResponse


class _Wire:
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    def writelines(self, chunks: list[bytes]) -> None:
        self.sent += b"".join(chunks)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default


def _exchange(method: str = "POST", **kwargs: object) -> tuple[Exchange, _Wire]:
    wire = _Wire()
    protocol = BaseProtocol(asyncio.get_running_loop())
    protocol.transport = wire  # type: ignore[assignment]
    writer = StreamWriter(protocol, asyncio.get_running_loop())
    request = make_mocked_request(
        method, "/v1/chat/completions", writer=writer, transport=wire, **kwargs
    )
    return Exchange(request), wire


async def _send(exchange: Exchange) -> None:
    assert exchange.response is not None
    await exchange.response.prepare(exchange.request)
    await exchange.response.write_eof()


async def test_a_whole_answer_goes_out_as_head_and_body_in_one_write() -> None:
    exchange, wire = _exchange()
    exchange.respond(200, {"Content-Type": "application/json", "X-Request-ID": "r1"}, b"{}")
    assert isinstance(exchange.response, WholeResponse)
    await _send(exchange)
    head, _, body = wire.sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    fields = dict(line.split(b": ", 1) for line in lines[1:])
    assert fields[b"Content-Type"] == b"application/json"
    assert fields[b"Content-Length"] == b"2"
    assert fields[b"Server"] == b"hxgw"
    assert b"Date" in fields and b"Connection" not in fields
    assert body == b"{}"
    assert exchange.committed and exchange.response.keep_alive


async def test_a_draining_gateway_closes_the_connection_after_the_answer() -> None:
    exchange, wire = _exchange()
    exchange.closing = True
    exchange.respond(503, {"Content-Type": "application/json"}, b"{}")
    await _send(exchange)
    assert b"\r\nConnection: close\r\n" in wire.sent
    assert exchange.response is not None and not exchange.response.keep_alive


async def test_a_control_character_in_a_header_value_is_refused_as_aiohttp_refuses_it() -> None:
    exchange, wire = _exchange()
    exchange.respond(200, {"Content-Type": "application/json", "X-HX-Model": "a\r\nb"}, b"{}")
    with pytest.raises(ValueError, match="control character"):
        await _send(exchange)
    assert wire.sent == b""


@pytest.mark.parametrize(
    ("method", "version", "status"),
    [("HEAD", None, 404), ("POST", HttpVersion10, 200), ("POST", None, 204)],
)
async def test_answers_without_a_body_or_on_http_1_0_are_aiohttps_own(
    method: str, version: object, status: int
) -> None:
    exchange, _ = _exchange(method, **({"version": version} if version else {}))
    exchange.respond(status, {"Content-Type": "application/json"}, b"{}")
    assert type(exchange.response) is web.Response
