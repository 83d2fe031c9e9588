"""The memo the upstream's header names and types are worked out through."""

from __future__ import annotations

from hxgw.memo import Memo


def counting_lower() -> tuple[list[bytes], Memo[bytes, bytes]]:
    calls: list[bytes] = []

    def lower(name: bytes) -> bytes:
        calls.append(name)
        return name.lower()

    return calls, Memo(lower, 3)


def test_a_key_is_computed_once_and_then_looked_up():
    calls, memo = counting_lower()
    assert memo[b"Content-Type"] == b"content-type"
    assert memo[bytes(bytearray(b"Content-Type"))] == b"content-type"  # an equal, new object
    assert calls == [b"Content-Type"]


def test_each_key_gets_its_own_value():
    _, memo = counting_lower()
    assert [memo[name] for name in (b"A", b"B", b"a")] == [b"a", b"b", b"a"]


def test_a_full_memo_starts_over_instead_of_growing():
    calls, memo = counting_lower()
    for name in (b"A", b"B", b"C", b"D"):
        memo[name]
    assert len(memo) == 1 and b"D" in memo
    memo[b"A"]
    assert calls == [b"A", b"B", b"C", b"D", b"A"]


def test_a_value_of_none_is_remembered_too():
    calls: list[bytes] = []

    def nothing(name: bytes) -> None:
        calls.append(name)

    memo: Memo[bytes, None] = Memo(nothing, 8)
    assert memo[b"Server"] is None and memo[b"Server"] is None
    assert calls == [b"Server"]
