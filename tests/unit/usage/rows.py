"""Ledger rows for tests, and reading them back."""

from __future__ import annotations

import time
from collections.abc import Callable

from hxgw.store import Database
from hxgw.usage import UsageRow

T0 = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


def row(n: int, **fields: object) -> UsageRow:
    values: dict[str, object] = {
        "request_id": f"req-{n:06d}",
        "key_name": "alice",
        "route": "/v1/chat/completions",
        "model_group": "chat",
        "model": "alpha",
        "status": 200,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cost": 0.25,
        "started": T0 + n,
        "first_byte": T0 + n + 0.1,
        "ended": T0 + n + 0.5,
    }
    values.update(fields)
    return UsageRow(**values)  # type: ignore[arg-type]


def stored_ids(database: Database) -> list[str]:
    with database.connect() as connection:
        return [r[0] for r in connection.execute("SELECT request_id FROM usage_ledger")]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
