"""What a serving gateway knows of the stored keys while their store is slow or away."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from hxgw.keys import book
from hxgw.keys.book import ConfigSays, StoredKeys


class SlowStore:
    """A key store with no keys, whose reads hang while `hanging` is set."""

    def __init__(self) -> None:
        self.hanging, self.released = threading.Event(), threading.Event()

    def connect(self) -> Any:
        return self

    def close(self) -> None:
        pass

    def marker(self, connection: Any) -> tuple[int, int, float]:
        if self.hanging.is_set():
            self.released.wait(10)
        return (0, 0, 0.0)

    def all(self, connection: Any) -> list[Any]:
        return []

    def execute(self, sql: str, *args: Any) -> list[Any]:  # the teams' table: none
        return []


async def test_the_keys_are_not_current_while_a_read_of_the_store_is_overdue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(book, "INTERVAL", 0.02)
    monkeypatch.setattr(book, "READ_WAIT", 0.3)
    store = SlowStore()
    stored = StoredKeys(store)  # type: ignore[arg-type]
    stored.refresh(ConfigSays(frozenset()))
    watching = asyncio.create_task(stored.watch(lambda: ConfigSays(frozenset())))
    try:
        await asyncio.sleep(0.1)
        assert stored.current()
        store.hanging.set()
        await asyncio.sleep(0.5)  # a read has hung for longer than READ_WAIT
        assert not stored.current()
        store.hanging.clear()
        store.released.set()
        await asyncio.sleep(0.1)
        assert stored.current()
    finally:
        store.released.set()
        watching.cancel()
