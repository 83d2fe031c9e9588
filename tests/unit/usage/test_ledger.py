"""The ledger on a real SQLite file and a real PostgreSQL: batches, the spool, close()."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

import structlog

from hxgw.store import Database, StoreError, open_database
from hxgw.store.sqlite import SqliteDatabase
from hxgw.usage import Ledger
from hxgw.usage.spool import Spool
from tests.unit.usage.rows import row, stored_ids, wait_for


def test_rows_are_written_in_batches_while_the_gateway_runs(database: Database, tmp_path: Path):
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.05, batch_rows=100)
    ledger.start()
    try:
        for n in range(250):
            ledger.record(row(n))
        assert wait_for(lambda: ledger.rows_written == 250)
        assert sorted(stored_ids(database)) == [f"req-{n:06d}" for n in range(250)]
    finally:
        ledger.close()


def test_a_report_in_place_of_its_estimate_keeps_the_estimate_s_key(
    database: Database, tmp_path: Path
):
    # A background response's stream cut short, then read finished with a key it was
    # handed to: the key whose stream made it pays, as the metrics count it.
    ledger = Ledger(database, tmp_path / "spool")
    ledger.record(row(1, usage_source="estimated", prompt_tokens=10))
    ledger.close()
    ledger = Ledger(database, tmp_path / "spool")
    ledger.record(row(1, key_name="bob", usage_source="reported", prompt_tokens=12))
    ledger.close()
    with database.connect() as connection:
        stored = connection.execute("SELECT key_name, usage_source, prompt_tokens FROM usage_ledger")
    assert [tuple(r) for r in stored] == [("alice", "reported", 12)]


def test_a_report_in_place_of_its_estimate_keeps_the_estimate_s_end_user(
    database: Database, tmp_path: Path
):
    # The read of a finished background response names no end user: its request did.
    ledger = Ledger(database, tmp_path / "spool")
    ledger.record(row(1, usage_source="estimated", end_user="user-17"))
    ledger.close()
    ledger = Ledger(database, tmp_path / "spool")
    ledger.record(row(1, usage_source="reported", end_user=None))
    ledger.close()
    with database.connect() as connection:
        stored = connection.execute("SELECT end_user, usage_source FROM usage_ledger")
    assert [tuple(r) for r in stored] == [("user-17", "reported")]


def test_every_field_reads_back_as_recorded(database: Database, tmp_path: Path):
    ledger = Ledger(database, tmp_path / "spool")
    original = row(1, stream=True, disconnected=True, failovers=2, first_byte=None, model=None,
                   end_user="user-17")
    ledger.record(original)
    ledger.close()
    with database.connect() as connection:
        (values,) = connection.execute("SELECT * FROM usage_ledger")
    as_stored = dict(zip(original.as_dict(), values, strict=True))
    assert as_stored | {"stream": bool(values[10]), "disconnected": bool(values[11])} == (
        original.as_dict()
    )


def test_a_row_the_store_refuses_is_dropped_alone_not_with_its_batch(
    database: Database, tmp_path: Path
):
    ledger = Ledger(database, tmp_path / "spool", batch_interval=60)
    for n in range(5):
        ledger.record(row(n, prompt_tokens=2**64 if n == 2 else 10))
    assert ledger.close(timeout=10)
    assert sorted(stored_ids(database)) == [f"req-{n:06d}" for n in (0, 1, 3, 4)]
    assert ledger.rows_dropped == 1
    assert not ledger.spool.waiting  # nothing kept to fail again


def test_a_row_too_large_for_the_store_s_index_is_refused_alone_not_taken_for_an_outage(
    database: Database, tmp_path: Path
):
    # A billed-apart row's id is an upstream's (a background response's, a batch's), and
    # PostgreSQL indexes a key of at most 2704 bytes: past that it had been read as the
    # store gone, and every row spooled behind one it would never take.
    ledger = Ledger(database, tmp_path / "spool", batch_interval=60)
    for n in range(5):
        long_id = "usage-of-resp_" + secrets.token_urlsafe(6000)
        ledger.record(row(n, request_id=long_id) if n == 2 else row(n))
    assert ledger.close(timeout=10)
    kept = [f"req-{n:06d}" for n in (0, 1, 3, 4)]
    assert sorted(i for i in stored_ids(database) if i.startswith("req-")) == kept
    assert not ledger.spool.waiting and ledger.rows_spooled == 0


def test_close_writes_what_is_queued(database: Database, tmp_path: Path):
    ledger = Ledger(database, tmp_path / "spool", batch_interval=60)
    ledger.start()
    for n in range(10):
        ledger.record(row(n))
    assert ledger.close(timeout=10)
    assert len(stored_ids(database)) == 10


def test_recording_never_waits_on_the_store_even_while_it_is_locked(tmp_path: Path):
    database = SqliteDatabase(tmp_path / "usage.db", busy_timeout=0.2)
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.05, max_backoff=0.2)
    ledger.start()
    with database.connect() as blocker, blocker.transaction():
        blocker.execute("CREATE TABLE IF NOT EXISTS hold (x INTEGER)")
        # Which threads ask the store for a connection from here on: the request path
        # (this thread) must never be one, whatever the store does. (Not timed: a shared
        # machine makes any bound on how long 2,000 records take a coin toss.)
        askers: set[int] = set()
        real_connect = database.connect

        def connect(**options):
            askers.add(threading.get_ident())
            return real_connect(**options)

        database.connect = connect
        for n in range(2000):
            ledger.record(row(n))
        assert wait_for(lambda: askers)  # the writer met the lock meanwhile
        assert ledger.rows_written == 0
    assert ledger.close(timeout=10)
    assert threading.get_ident() not in askers
    assert ledger.rows_written == 2000


def test_a_replayed_batch_that_had_partly_committed_adds_each_row_once(
    database: Database, tmp_path: Path
):
    first = Ledger(database, tmp_path / "spool")
    for n in range(50):
        first.record(row(n))
    first.close()
    # As if the store went away during the commit of rows 0-99 and they were spooled.
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.add([row(n).values() for n in range(100)])
    spool.close()
    second = Ledger(database, tmp_path / "spool")
    second.start()
    second.close()
    assert sorted(stored_ids(database)) == [f"req-{n:06d}" for n in range(100)]
    assert not list((tmp_path / "spool").iterdir())


def test_the_spool_keeps_the_oldest_rows_up_to_its_bound_and_refuses_the_newest(tmp_path: Path):
    (tmp_path / "not-a-directory").write_text("")
    unreachable = open_database(None, tmp_path / "not-a-directory")
    ledger = Ledger(unreachable, tmp_path / "spool", spool_max_bytes=20_000)
    for n in range(200):
        ledger.record(row(n))
    ledger.close()
    assert 0 < ledger.spool_bytes <= 20_000
    assert ledger.spool.size() == ledger.spool_bytes
    assert ledger.rows_dropped > 0
    assert ledger.rows_spooled + ledger.rows_dropped == 200
    kept: list[str] = []
    Spool(tmp_path / "spool", 20_000).replay(lambda rows: kept.extend(r[0] for r in rows), 50)  # request_id
    assert kept == [f"req-{n:06d}" for n in range(ledger.rows_spooled)]


def test_a_spool_that_cannot_be_written_says_so_once_not_once_a_batch(tmp_path: Path):
    (tmp_path / "not-a-directory").write_text("")
    unreachable = open_database(None, tmp_path / "not-a-directory")
    ledger = Ledger(unreachable, tmp_path / "spool", batch_interval=0.02)
    (tmp_path / "spool").write_text("")  # as on a full disk, every write fails
    with structlog.testing.capture_logs() as logs:
        ledger.start()
        for n in range(5):
            ledger.record(row(n))
            time.sleep(0.1)  # a batch each
        ledger.close()
    lost = [e for e in logs if e["event"].startswith("usage rows are being lost")]
    assert len(lost) == 1 and lost[0]["why"].startswith("the spool cannot be written")
    assert not any("full" in e.get("why", "") for e in logs)
    assert ledger.rows_dropped == 5


def test_two_workers_write_one_sqlite_file_at_once(tmp_path: Path):
    ledgers = [
        Ledger(open_database(None, tmp_path), tmp_path / "spool", batch_interval=0.01,
               batch_rows=10)
        for _ in range(2)
    ]
    for ledger in ledgers:
        ledger.start()
    for n in range(1000):
        ledgers[n % 2].record(row(n))
    for ledger in ledgers:
        assert ledger.close(timeout=20)
    assert len(stored_ids(open_database(None, tmp_path))) == 1000
    assert sum(ledger.rows_spooled for ledger in ledgers) == 0


def _unopenable(path: Path) -> None:
    """A spool file the gateway's user may not open: mode 000, or, for root, whom no mode
    stops, a link to itself (ELOOP). Either way its open raises an OSError."""
    if os.getuid() == 0:
        path.symlink_to(path.name)
    else:
        path.write_bytes(row(99).as_dict().__repr__().encode())
        path.chmod(0)


def _skipped_once_and_the_store_still_written(spool_dir: Path, stuck: Path, tmp_path: Path):
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, spool_dir, batch_interval=0.05)
    with structlog.testing.capture_logs() as logs:
        ledger.start()
        for n in range(5):
            ledger.record(row(n))
            time.sleep(0.1)  # a batch each
        assert wait_for(lambda: ledger.rows_written == 5)
        assert ledger.close(timeout=10)
    assert ledger.rows_spooled == 0
    said = [e for e in logs if e["event"].startswith("a usage spool file cannot be read")]
    assert len(said) == 1 and said[0]["file"] == str(stuck) and said[0]["fix"]
    assert [p.name for p in spool_dir.iterdir()] == [stuck.name]  # no spool file a batch


def test_a_spool_file_that_cannot_be_opened_is_skipped_and_said_once(tmp_path: Path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    stuck = spool_dir / f"{1:020d}-1.jsonl"
    _unopenable(stuck)
    _skipped_once_and_the_store_still_written(spool_dir, stuck, tmp_path)


def test_a_directory_named_as_a_spool_file_is_skipped_and_said_once(tmp_path: Path):
    spool_dir = tmp_path / "spool"
    stuck = spool_dir / f"{1:020d}-1.jsonl"
    stuck.mkdir(parents=True)
    _skipped_once_and_the_store_still_written(spool_dir, stuck, tmp_path)


def test_rows_a_full_spool_refuses_reach_a_store_back_before_its_retry_is_due(tmp_path: Path):
    (tmp_path / "state").write_text("")  # the store is away: its directory is a file
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.05, max_backoff=30,
                    spool_max_bytes=1)
    ledger.start()
    try:
        time.sleep(3.5)  # failed at 0.05, 0.15, 0.35, 0.75, 1.55 and 3.15 s: next at 6.35 s
        (tmp_path / "state").unlink()  # back
        for n in range(5):
            ledger.record(row(n))
        assert wait_for(lambda: ledger.rows_written == 5, timeout=2)
        assert ledger.rows_dropped == 0
    finally:
        ledger.close(timeout=10)


def test_a_store_that_connects_but_takes_no_row_is_back_only_once_a_row_goes_in(
    tmp_path: Path,
):
    # A full disk: a connection opens, a write fails. Each retry with no row to write
    # had said the store was back (and reset the back-off), every two seconds.
    database = SqliteDatabase(tmp_path / "usage.db")
    full = threading.Event()
    full.set()
    real_connect = database.connect

    def connect(**options):
        connection = real_connect(**options)
        real_write = connection.executemany

        def executemany(sql, rows):
            if full.is_set():
                raise StoreError("database or disk is full")
            return real_write(sql, rows)

        connection.executemany = executemany  # type: ignore[method-assign]
        return connection

    database.connect = connect  # type: ignore[method-assign]
    ledger = Ledger(database, tmp_path / "spool", batch_interval=0.02, max_backoff=0.05)
    (tmp_path / "spool").write_text("")  # the same full disk: the spool takes none either
    with structlog.testing.capture_logs() as logs:
        ledger.start()
        for n in range(5):  # a row now and then, retries with none between them
            ledger.record(row(n))
            assert wait_for(lambda n=n: ledger.rows_dropped == n + 1)
            time.sleep(0.15)
        full.clear()
        ledger.record(row(5))
        assert wait_for(lambda: ledger.rows_written == 1)
        ledger.close()
    events = [e["event"] for e in logs]
    assert events.count("usage store unreachable, spooling rows") == 1
    assert events.count("usage store reachable again") == 1


def test_a_row_recorded_once_is_queued_once_however_often_it_comes(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool")
    for _ in range(3):
        ledger.record_once(row(1).values())
    ledger.record_once(row(2).values())
    assert ledger.pending == 2


def test_a_store_away_for_long_is_tried_again_within_the_longest_back_off(tmp_path: Path):
    # Each failure doubles the wait: uncapped, an hour's outage had the ledger wait an
    # hour more before it looked again, spooling rows a store back long since would take.
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool",
                    batch_interval=0.05, max_backoff=2.0)
    for _ in range(30):  # 0.05 s doubled 30 times: 15 years
        ledger._failed(StoreError("unreachable"))
    assert ledger._retry_at - time.monotonic() <= 2.0


def test_a_full_batch_is_written_without_waiting_out_the_interval(tmp_path: Path):
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, tmp_path / "spool", batch_interval=3600, batch_rows=2)
    ledger.record(row(0))
    ledger.start()
    try:
        assert wait_for(lambda: ledger.rows_written == 1)  # the flush at start
        ledger.record(row(1))
        ledger.record(row(2))  # a batch's worth: the writer wakes for it
        assert wait_for(lambda: ledger.rows_written == 3)
    finally:
        ledger.close()


def test_a_stop_during_a_back_off_tries_the_store_once_more(tmp_path: Path):
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, tmp_path / "spool", batch_interval=3600, max_backoff=3600)
    ledger._failed(StoreError("unreachable"))  # the store failed: no retry for an hour
    ledger.record(row(1))
    ledger.close()
    assert stored_ids(database) == ["req-000001"] and ledger.rows_spooled == 0


def test_a_stop_while_the_writer_is_stuck_on_a_store_spools_the_rows_it_holds(tmp_path: Path):
    database = SqliteDatabase(tmp_path / "usage.db")
    answer, stuck = threading.Event(), threading.Event()
    real_connect = database.connect

    def connect(**options):
        connection = real_connect(**options)
        real_write = connection.executemany

        def executemany(sql, rows):  # a store that takes the write and never answers
            stuck.set()
            answer.wait()
            return real_write(sql, rows)

        connection.executemany = executemany  # type: ignore[method-assign]
        return connection

    database.connect = connect  # type: ignore[method-assign]
    ledger = Ledger(database, tmp_path / "spool")
    for n in range(3):
        ledger.record(row(n))
    ledger.start()
    try:
        assert stuck.wait(10)
        assert not ledger.close(timeout=0.2)
        spooled = [r[0] for r in Spool(tmp_path / "spool", 1 << 20).rows()]
        assert spooled == ["req-000000", "req-000001", "req-000002"]
    finally:
        answer.set()


def _with_its_store_away(tmp_path: Path) -> Ledger:
    """A ledger whose store is away (its directory is a file), tried again at once:
    unlinking `tmp_path / "state"` brings it back."""
    (tmp_path / "state").write_text("")
    return Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool",
                  batch_interval=0.02, max_backoff=0.05)


def test_a_store_back_is_said_to_be_once_the_spool_is_replayed_before_any_new_row(
    tmp_path: Path,
):
    ledger = _with_its_store_away(tmp_path)
    with structlog.testing.capture_logs() as logs:
        ledger.record(row(1))
        ledger.start()
        try:
            assert wait_for(lambda: ledger.rows_spooled == 1)
            (tmp_path / "state").unlink()  # back, with no new row to write
            assert wait_for(lambda: any(e["event"] == "usage store reachable again"
                                        for e in logs))
        finally:
            ledger.close()


def test_each_failure_of_the_store_doubles_the_wait_before_it_is_tried_again(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool",
                    batch_interval=1.0, max_backoff=60)
    for _ in range(3):
        ledger._failed(StoreError("unreachable"))
    assert ledger._backoff == 4.0


def test_a_store_back_starts_its_next_back_off_over(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool",
                    batch_interval=1.0, max_backoff=60)
    for _ in range(5):
        ledger._failed(StoreError("unreachable"))
    ledger._recovered()
    ledger._failed(StoreError("unreachable again"))
    assert ledger._backoff == 1.0


def test_rows_spooled_while_the_store_s_retry_is_awaited_are_counted(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool",
                    batch_interval=10, max_backoff=10)
    ledger._failed(StoreError("unreachable"))  # tried again in 10 s
    ledger.record(row(1))
    ledger.start()
    try:
        assert wait_for(lambda: ledger.rows_spooled == 1)
    finally:
        ledger.close()


def test_rows_lost_while_the_store_was_away_are_said_once_it_is_back(tmp_path: Path):
    (tmp_path / "spool").write_text("")  # the spool cannot be written
    ledger = _with_its_store_away(tmp_path)
    with structlog.testing.capture_logs() as logs:
        ledger.record(row(1))
        ledger.start()
        try:
            assert wait_for(lambda: ledger.rows_dropped == 1)
            (tmp_path / "state").unlink()  # back
            ledger.record(row(2))
            assert wait_for(lambda: ledger.rows_written == 1)
        finally:
            ledger.close()
    said = [e for e in logs if e["event"] == "the usage spool takes rows again"]
    assert [e["rows_lost"] for e in said] == [1]
