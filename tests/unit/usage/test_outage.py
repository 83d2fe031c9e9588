"""The ledger's promise: PostgreSQL stopped for 10 s under load loses no row."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hxgw.store import open_database
from hxgw.usage import Ledger
from tests.postgres import Postgres
from tests.unit.usage.rows import row, stored_ids, wait_for

RATE = 200  # rows a second, recorded from another thread the whole time


@pytest.mark.postgres
def test_postgres_stopped_for_10_seconds_mid_load_loses_no_row_and_duplicates_none(
    own_postgres: Postgres, tmp_path: Path
):
    database = open_database(own_postgres.url(), tmp_path)
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.1, max_backoff=0.5)
    ledger.start()
    recorded = 0
    done = threading.Event()

    def load() -> None:
        nonlocal recorded
        while not done.is_set():
            ledger.record(row(recorded))
            recorded += 1
            time.sleep(1 / RATE)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(1.5)
        own_postgres.stop(mode="immediate")
        stopped_at = recorded
        time.sleep(10)
        assert ledger.rows_spooled > 0
        own_postgres.start()
        # Back: the spool is replayed while rows keep coming, not only at close().
        assert wait_for(lambda: ledger.spool_bytes == 0, timeout=10)
        time.sleep(0.5)
    finally:
        done.set()
        loader.join()
    assert ledger.close(timeout=20)
    ids = stored_ids(database)
    assert recorded > stopped_at + 10 * RATE // 2
    assert len(ids) == len(set(ids)) == recorded
    assert set(ids) == {row(n).request_id for n in range(recorded)}
    assert ledger.spool_bytes == 0
