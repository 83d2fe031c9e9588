"""The ledger's promise: PostgreSQL stopped for 10 s under load loses no row."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import structlog

from hxgw.store import open_database
from hxgw.usage import Ledger
from hxgw.usage.ledger import ANSWER_WITHIN
from tests.postgres import Postgres
from tests.unit.usage.rows import row, stored_ids, wait_for

RATE = 200  # rows a second, recorded from another thread the whole time


@pytest.mark.faults  # seconds of waiting: in `make test-faults`
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


@pytest.mark.postgres
def test_rows_held_by_a_frozen_postgresql_are_spooled_when_the_ledger_closes(
    own_postgres: Postgres, tmp_path: Path
):
    import psycopg

    url = own_postgres.url()
    ledger = Ledger(open_database(url, tmp_path), tmp_path / "spool", batch_interval=0.1)
    ledger.start()
    ledger.record(row(0))
    assert wait_for(lambda: ledger.rows_written == 1, timeout=10)
    with psycopg.connect(url, autocommit=True) as admin:
        backends = [pid for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'hxgw'")]
    for pid in backends:  # alive, its kernel still acknowledging: no timeout fires
        os.kill(pid, signal.SIGSTOP)
    try:
        for n in range(1, 21):
            ledger.record(row(n))
        time.sleep(0.5)  # the writer is now stuck in its write
        assert not ledger.close(timeout=2)
        spooled = [json.loads(line) for path in (tmp_path / "spool").iterdir()
                   for line in path.read_bytes().splitlines()]
        assert {r["request_id"] for r in spooled} == {row(n).request_id for n in range(1, 21)}
    finally:
        for pid in backends:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.postgres
def test_rows_reach_the_spool_within_seconds_of_postgresql_freezing(
    own_postgres: Postgres, tmp_path: Path
):
    database = open_database(own_postgres.url(), tmp_path)
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.1)
    ledger.start()
    try:
        ledger.record(row(0))
        assert wait_for(lambda: ledger.rows_written == 1, timeout=10)
        with own_postgres.frozen(), structlog.testing.capture_logs() as logs:
            for n in range(1, 21):
                ledger.record(row(n))
            # Not held in memory, for a crash to take, as long as the server stays frozen.
            assert wait_for(lambda: ledger.rows_spooled == 20, timeout=ANSWER_WITHIN + 10)
            assert ledger.pending == 0
            assert any(e["event"] == "usage store unreachable, spooling rows" for e in logs)
    finally:
        assert ledger.close(timeout=20)
    assert sorted(stored_ids(database)) == [row(n).request_id for n in range(21)]


@pytest.mark.postgres
def test_a_stop_while_the_writer_waits_on_a_frozen_store_spools_the_batch_it_had_taken(
    own_postgres: Postgres, tmp_path: Path
):
    ledger = Ledger(open_database(own_postgres.url(), tmp_path), tmp_path / "spool")
    for n in range(10):
        ledger.record(row(n))
    with own_postgres.frozen():
        ledger.start()  # takes the rows, then waits on the store before any is written
        time.sleep(0.5)
        assert ledger.pending == 0
        assert not ledger.close(timeout=1)
        spooled = [json.loads(line) for path in (tmp_path / "spool").iterdir()
                   for line in path.read_bytes().splitlines()]
    assert {r["request_id"] for r in spooled} == {row(n).request_id for n in range(10)}
