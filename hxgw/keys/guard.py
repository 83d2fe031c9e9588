"""Key guessing: refuse a client address that keeps presenting bad keys, without
refusing anyone's good key because of it.

After `max_failures` bad keys within `window` seconds an address is locked out
for `lockout` seconds (an IPv6 address counts as its /64, which one host
usually holds whole): every key it presents then gets 429 without being told
apart, so a right guess looks like a wrong one. Every key that has worked from
that address within the last `KNOWN_FOR` seconds still works: the clients that
share an address with a guesser (behind NAT or a reverse proxy) keep going.
The API and the operator's routes share one guard. Memory stays bounded:
expired entries are dropped, and when the table is full of live ones the counts
still going are, but not the lockouts.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from enum import Enum

from hxgw.config.schema import BadKeyPolicy, Network
from hxgw.memo import Memo

MAX_TRACKED = 10_000
KNOWN_FOR = 3600.0
"""How long a key that worked from an address stays known there."""
KNOWN_PER_ADDRESS = 64


class Verdict(Enum):
    OK = "ok"
    BAD = "bad"
    LOCKED = "locked"


@dataclass(slots=True)
class _Record:
    failures: int
    window_start: float
    locked_until: float = 0.0
    known: dict[bytes, float] = field(default_factory=dict)
    """Digests of keys that worked from this address, and when they last did."""


class BadKeyGuard:
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self.lockouts = 0
        """Lockouts begun (for the log: the caller says so once per lockout)."""

    def judge(
        self, address: str, digest: bytes, valid: bool, now: float, policy: BadKeyPolicy
    ) -> Verdict:
        """The fate of a key presented from `address`; `valid` says whether it is a key."""
        address = counted_as[address]
        record = self._records.get(address)
        if record is not None and record.locked_until > now:
            if valid and now - record.known.get(digest, -math.inf) <= KNOWN_FOR:
                record.known[digest] = now
                return Verdict.OK
            return Verdict.LOCKED
        if valid:
            if record is None:
                record = self._new(address, now, policy)
            if len(record.known) >= KNOWN_PER_ADDRESS and digest not in record.known:
                record.known.clear()
            record.known[digest] = now
            return Verdict.OK
        if record is None or now - record.window_start > policy.window:
            known = record.known if record is not None else {}
            record = self._new(address, now, policy)
            record.known = known
        record.failures += 1
        if record.failures >= policy.max_failures:
            record.locked_until = now + policy.lockout
            record.failures, record.window_start = 0, now + policy.lockout
            self.lockouts += 1  # this key was judged, and is bad; the next ones wait
        return Verdict.BAD

    def locked_for(self, address: str, now: float) -> float:
        """Seconds the address is still locked out; 0 when it is not."""
        record = self._records.get(counted_as[address])
        if record is None or record.locked_until <= now:
            return 0.0
        return record.locked_until - now

    def _new(self, address: str, now: float, policy: BadKeyPolicy) -> _Record:
        if len(self._records) >= MAX_TRACKED:
            self._prune(now, policy.window)
        record = self._records[address] = _Record(failures=0, window_start=now)
        return record

    def _prune(self, now: float, window: float) -> None:
        self._records = {
            address: record
            for address, record in self._records.items()
            if record.locked_until > now or now - record.window_start <= window
        }
        if len(self._records) >= MAX_TRACKED:
            # A flood from many addresses, which may be meant to wipe a lockout: keep
            # the lockouts, drop the counts still going.
            locked = [(a, r) for a, r in self._records.items() if r.locked_until > now]
            if len(locked) >= MAX_TRACKED // 2:  # all locked: keep the newest half
                locked.sort(key=lambda item: item[1].locked_until)
                locked = locked[-(MAX_TRACKED // 2) :]
            self._records = dict(locked)


def _network_of(address: str) -> str:
    """What the guard counts `address` as: an IPv6 address as its /64, since one host
    is given a whole /64 and could guess from a new address each time; an IPv4-mapped
    one (a dual-stack listener's IPv4 client) as its IPv4 address, or every IPv4
    client would share ::ffff:0:0's /64."""
    if ":" not in address:
        return address  # IPv4, or no address at all
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


counted_as = Memo(_network_of, 4096)
"""The client an address is counted as, by the guard and by the cap on connections from
one address (hxgw.server.protocol); parsed once per address, from which a client sends
many requests."""


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The address a request comes from: its peer's, or, when the peer is one of the
    `trusted` proxies, the last address in X-Forwarded-For that is not one of them
    (the ones before it could have been written by the client itself)."""
    if peer is None:
        return "-"
    if not trusted or not forwarded_for or not is_within(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        if not is_within(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if _is_address(hops[0]) else peer


def is_within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
