"""The cap on connections open at once from one client."""

from __future__ import annotations

from typing import Any

from hxgw.keys.guard import counted_as
from hxgw.observe import AccessLog
from hxgw.observe.ids import RequestIds
from hxgw.server.protocol import GatewayServer


async def _handler(request: Any) -> None:  # never called: no connection is made
    raise AssertionError


def _server(cap: int) -> GatewayServer:
    return GatewayServer(_handler, access=AccessLog.plain(), ids=RequestIds(),
                         per_address=lambda: (cap, lambda address: False),
                         counted_as=counted_as)


async def test_connections_from_one_ipv6_64_share_one_client_s_cap():
    # One host holds a whole /64: opening each connection from a new address of it
    # had escaped the cap.
    server = _server(2)
    assert server.admit("2001:db8::1") and server.admit("2001:db8::2")
    assert not server.admit("2001:db8::3")
    assert server.admit("2001:db8:0:1::1")  # another /64, another client


async def test_a_connection_closed_gives_its_client_s_share_back():
    server = _server(1)
    assert server.admit("2001:db8::1")
    server.release("2001:db8::1")
    assert server.admit("2001:db8::2")


async def test_ipv4_clients_of_a_dual_stack_listener_are_counted_apart():
    server = _server(1)
    assert server.admit("::ffff:192.0.2.1") and server.admit("::ffff:192.0.2.2")
