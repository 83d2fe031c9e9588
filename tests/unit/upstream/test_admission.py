"""An upstream's cap and queue: who gets a slot, who waits, who is shed, and when."""

from __future__ import annotations

import asyncio

import pytest

from hxgw.config.schema import Upstream
from hxgw.upstream import Gate, GateFull, Gates, UpstreamClient
from tests.fixtures import wait_for
from tests.raw_upstream import Server, keep_alive, read_request, reply, serving


async def post(client: UpstreamClient, server: Server, gate: Gate) -> bytes:
    await gate.enter()
    response = await client.request(
        b"POST",
        server.origin,
        b"/v1/chat/completions",
        b"",
        [],
        b"{}",
        connect_timeout=2,
        slot=gate,
    )
    data = await response.read(1 << 30)
    response.release()
    return data


async def test_below_the_cap_a_request_enters_without_waiting() -> None:
    gate = Gate("u", cap=2, max_queued=10, queue_timeout=1)
    assert await gate.enter() == 0.0
    assert await gate.enter() == 0.0
    assert gate.in_use == 2


async def test_at_the_cap_a_request_waits_for_the_next_slot_given_back() -> None:
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=5)
    await gate.enter()
    waiting = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.05)
    assert not waiting.done() and len(gate.waiting) == 1
    gate.leave()
    assert await asyncio.wait_for(waiting, 1) >= 0.04
    assert gate.in_use == 1


async def test_waiting_requests_get_their_turns_in_arrival_order() -> None:
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=5)
    await gate.enter()
    order: list[int] = []

    async def wait(n: int) -> None:
        await gate.enter()
        order.append(n)

    tasks = [asyncio.ensure_future(wait(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    for _ in range(3):
        gate.leave()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]


async def test_a_full_queue_sheds_at_once_with_a_retry_after() -> None:
    gate = Gate("u", cap=1, max_queued=1, queue_timeout=3)
    await gate.enter()
    queued = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    with pytest.raises(GateFull) as raised:
        gate.enter().send(None)  # at once: it raises before it would ever wait
    assert raised.value.retry_after == 3
    assert "at capacity for upstream 'u'" in str(raised.value)
    assert gate.shed == 1
    queued.cancel()


async def test_a_gate_that_never_queues_still_asks_a_shed_request_to_wait_a_second() -> None:
    # Retry-After: 0 would send every SDK straight back at an upstream still at its cap.
    gate = Gate("u", cap=1, max_queued=0, queue_timeout=0)
    await gate.enter()
    with pytest.raises(GateFull) as raised:
        await gate.enter()
    assert raised.value.retry_after == 1


async def test_a_request_waits_no_longer_than_queue_timeout() -> None:
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=0.2)
    await gate.enter()
    with pytest.raises(GateFull, match="queue_timeout"):
        await gate.enter()
    assert not gate.waiting and gate.in_use == 1


async def test_a_request_cancelled_while_waiting_takes_no_slot() -> None:
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=5)
    await gate.enter()
    waiting = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.sleep(0)
    gate.leave()
    assert gate.in_use == 0 and not gate.waiting


async def test_a_slot_handed_to_a_request_cancelled_at_that_moment_passes_on() -> None:
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=5)
    await gate.enter()
    first = asyncio.ensure_future(gate.enter())
    second = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.01)
    gate.leave()  # the slot goes to `first` ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.wait_for(second, 1)  # let in, not left waiting for a slot nobody holds
    assert gate.in_use == 1


async def test_a_larger_cap_on_reload_lets_waiting_requests_in() -> None:
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=5)
    await gate.enter()
    waiting = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.01)
    gate.configure(cap=2, max_queued=10, queue_timeout=5)
    await asyncio.wait_for(waiting, 1)
    assert gate.in_use == 2


async def test_a_smaller_cap_on_reload_takes_back_slots_as_they_are_given_back() -> None:
    gate = Gate("u", cap=2, max_queued=10, queue_timeout=5)
    await gate.enter()
    await gate.enter()
    gate.configure(cap=1, max_queued=10, queue_timeout=5)
    waiting = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.01)
    gate.leave()
    await asyncio.sleep(0.01)
    assert not waiting.done() and gate.in_use == 1
    gate.leave()
    await asyncio.wait_for(waiting, 1)


def test_upstreams_without_a_cap_share_what_the_capped_ones_leave_equally() -> None:
    gates = Gates()
    gates.configure(
        [
            Upstream(name="a", url="http://a"),
            Upstream(name="b", url="http://b"),
            Upstream(name="c", url="http://c", max_concurrent=7),
        ],
        capacity=1000,
    )
    assert [gates[n].cap for n in "abc"] == [496, 496, 7]


async def test_connections_in_use_never_exceed_the_cap() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(reply(b"{}"))
            await writer.drain()

    client = UpstreamClient()
    gate = Gate("u", cap=2, max_queued=10, queue_timeout=5)
    async with serving(slow) as server:
        await asyncio.gather(*(post(client, server, gate) for _ in range(6)))
        assert server.most_open == 2
    assert gate.in_use == 0
    client.close()


async def test_a_failed_connect_gives_the_slot_back() -> None:
    async with serving(keep_alive) as server:
        origin = server.origin
    client = UpstreamClient()
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=5)
    await gate.enter()
    with pytest.raises(OSError):
        await client.request(b"POST", origin, b"/", b"", [], b"{}", connect_timeout=2, slot=gate)
    assert gate.in_use == 0
    client.close()


async def test_a_connection_closed_after_its_answer_gives_the_slot_back() -> None:
    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(reply(b'{"ok":true}', b"Connection: close\r\n"))
        await writer.drain()

    client = UpstreamClient()
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=5)
    async with serving(one_answer_then_close) as server:
        assert await post(client, server, gate) == b'{"ok":true}'
        await wait_for(lambda: gate.in_use == 0)
    client.close()


def test_a_removed_upstream_leaves_the_config_s_gates_but_is_held_for_requests_begun_before(
) -> None:
    gates = Gates()
    gates.configure([Upstream(name="a", url="http://a"), Upstream(name="b", url="http://b")], 10)
    b = gates["b"]
    gates.configure([Upstream(name="a", url="http://a")], 10)
    assert list(gates) == ["a"] and gates["a"].cap == 10
    assert gates.including_removed("b") is b


async def test_an_upstream_removed_and_added_again_keeps_the_slots_its_requests_hold() -> None:
    gates = Gates()
    gates.configure([Upstream(name="a", url="http://a", max_concurrent=1)], 10)
    await gates["a"].enter()
    gates.configure([], 10)
    gates.configure([Upstream(name="a", url="http://a", max_concurrent=1)], 10)
    assert gates["a"].in_use == 1


async def test_a_larger_cap_counts_no_slot_for_a_wait_that_just_ran_out() -> None:
    gate = Gate("u", cap=1, max_queued=10, queue_timeout=0.05)
    await gate.enter()
    expired = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)  # it waits, its timer set
    # A reload in the same loop turn as the timer, before the waiter has run again.
    asyncio.get_running_loop().call_later(0.05, gate.configure, 3, 10, 0.05)
    with pytest.raises(GateFull):
        await expired
    assert gate.in_use == 1
