"""Refuse a client address that keeps presenting bad keys, as fail2ban would.

Guessing keys costs an attacker one request per guess; after `max_failures`
bad keys within `window` seconds, the address gets 429 for `lockout` seconds
on every request, good key or not (telling it apart would tell the attacker
when a guess was right). Memory stays bounded: expired entries are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TRACKED = 10_000


@dataclass(slots=True)
class _Record:
    failures: int
    window_start: float
    locked_until: float = 0.0


class BadKeyGuard:
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}

    def locked_for(self, address: str, now: float) -> float:
        """Seconds the address is still refused; 0 when it may try."""
        record = self._records.get(address)
        if record is None or record.locked_until <= now:
            return 0.0
        return record.locked_until - now

    def failed(
        self, address: str, now: float, max_failures: int, window: float, lockout: float
    ) -> bool:
        """Count a bad key; True when this failure locks the address out."""
        record = self._records.get(address)
        if record is None or now - record.window_start > window:
            if len(self._records) >= MAX_TRACKED:
                self._prune(now, window)
            record = self._records[address] = _Record(failures=0, window_start=now)
        record.failures += 1
        if record.failures >= max_failures and record.locked_until <= now:
            record.locked_until = now + lockout
            record.failures, record.window_start = 0, now + lockout
            return True
        return False

    def _prune(self, now: float, window: float) -> None:
        self._records = {
            address: record
            for address, record in self._records.items()
            if record.locked_until > now or now - record.window_start <= window
        }
