"""The store layer on a real SQLite file and a real PostgreSQL: connect, write, read,
and bring a schema up from its first version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from hxgw.store import Database, Migration, RowRefused, StoreError, open_database
from hxgw.store.migrate import migrate, migrate_database, schema_version
from hxgw.store.postgres import PostgresDatabase

STEPS = (
    Migration(component="things", version=1, description="things",
              statements=("CREATE TABLE things (id TEXT PRIMARY KEY, n INTEGER NOT NULL)",)),
    Migration(component="things", version=2, description="a label",
              statements=("ALTER TABLE things ADD COLUMN label TEXT NOT NULL DEFAULT 'x'",)),
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return open_database(None, tmp_path / "state")
    return open_database(request.getfixturevalue("postgres_url"), tmp_path)


def test_a_new_store_is_migrated_to_the_newest_version(database: Database):
    assert migrate_database(database, STEPS) == 2
    with database.connect() as connection:
        assert schema_version(connection, "things") == 2


def test_a_store_at_the_first_version_is_migrated_up_keeping_its_rows(database: Database):
    with database.connect() as connection:
        assert migrate(connection, STEPS, upto=1) == 1
        with connection.transaction():
            connection.execute("INSERT INTO things (id, n) VALUES (?, ?)", ("a", 1))
    assert migrate_database(database, STEPS) == 2
    with database.connect() as connection:
        assert connection.execute("SELECT id, n, label FROM things") == [("a", 1, "x")]


def test_migrating_twice_applies_each_step_once(database: Database):
    migrate_database(database, STEPS)
    assert migrate_database(database, STEPS) == 2
    with database.connect() as connection:
        rows = connection.execute("SELECT version FROM schema_version ORDER BY version")
    assert rows == [(1,), (2,)]


def test_placeholders_are_question_marks_on_both_stores(database: Database):
    migrate_database(database, STEPS)
    with database.connect() as connection:
        connection.executemany("INSERT INTO things (id, n) VALUES (?, ?)", [("50%", 1), ("b", 2)])
        rows = connection.execute("SELECT id FROM things WHERE id LIKE '%\\%%' ESCAPE '\\'")
    assert rows == [("50%",)]


def test_a_failed_transaction_leaves_nothing(database: Database):
    migrate_database(database, STEPS)
    with database.connect() as connection:
        with pytest.raises(StoreError), connection.transaction():
            connection.execute("INSERT INTO things (id, n) VALUES (?, ?)", ("a", 1))
            connection.execute("INSERT INTO things (id, n) VALUES (?, ?)", ("a", 2))
        assert connection.execute("SELECT COUNT(*) FROM things") == [(0,)]


def test_the_sqlite_file_is_in_wal_mode_under_the_state_directory(tmp_path: Path):
    database = open_database(None, tmp_path / "state")
    with database.connect() as connection:
        assert connection.execute("PRAGMA journal_mode") == [("wal",)]
    assert (tmp_path / "state" / "hxgw.db").is_file()


def test_the_sqlite_file_and_its_wal_are_its_owners_alone_whatever_the_umask(tmp_path: Path):
    # It holds every key's hash and every app's usage; `hxgw keys` may be run with 022.
    old = os.umask(0o022)
    try:
        database = open_database(None, tmp_path / "state")
        with database.connect() as connection:
            connection.execute("CREATE TABLE t (x INTEGER)")
            modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "state").iterdir()}
    finally:
        os.umask(old)
    assert modes == {"hxgw.db": 0o600, "hxgw.db-wal": 0o600, "hxgw.db-shm": 0o600}


def test_a_reader_does_not_create_a_missing_sqlite_file(tmp_path: Path):
    with pytest.raises(StoreError, match="no database at"):
        open_database(None, tmp_path, create=False).connect()
    assert not (tmp_path / "hxgw.db").exists()


@pytest.mark.postgres
def test_an_unreachable_postgres_is_a_store_error_without_the_password():
    database = open_database("postgresql://u:secret@127.0.0.1:1/db", Path("/nonexistent"))
    with pytest.raises(StoreError) as caught:
        database.connect()
    assert "secret" not in str(caught.value)
    assert "127.0.0.1:1" in database.where


def test_a_database_url_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="postgresql://"):
        open_database("mysql://x", Path("/nonexistent"))


@pytest.mark.postgres
def test_a_statement_stuck_behind_a_lock_is_cancelled_by_the_statement_timeout(postgres_url: str):
    database = PostgresDatabase(postgres_url, statement_timeout=0.5)
    migrate_database(database, STEPS)
    with psycopg.connect(postgres_url) as holder, database.connect() as connection:
        holder.execute("LOCK TABLE things IN ACCESS EXCLUSIVE MODE")  # held until rollback
        with pytest.raises(StoreError, match="statement timeout"):
            connection.execute("SELECT COUNT(*) FROM things")
        holder.rollback()
        assert connection.execute("SELECT COUNT(*) FROM things") == [(0,)]


@pytest.mark.postgres
def test_a_migration_is_not_cut_short_by_the_statement_timeout(postgres_url: str):
    slow = Migration(component="slow", version=1, description="takes a while",
                     statements=("SELECT pg_sleep(0.3)",))
    assert migrate_database(PostgresDatabase(postgres_url, statement_timeout=0.05), [slow]) == 1


@pytest.mark.postgres
def test_sessions_probe_a_silent_server_unless_the_url_says_otherwise(postgres_url: str):
    with PostgresDatabase(postgres_url).connect() as connection:
        assert connection.raw.info.get_parameters()["keepalives_idle"] == "30"
        assert connection.raw.info.get_parameters()["tcp_user_timeout"] == "30000"
    own = f"{postgres_url}?keepalives_idle=5"
    with PostgresDatabase(own).connect() as connection:
        assert connection.raw.info.get_parameters()["keepalives_idle"] == "5"


def test_a_lone_surrogate_is_a_refused_row_not_a_failed_batch(database: Database):
    migrate_database(database, STEPS)
    with database.connect() as connection, pytest.raises(RowRefused):
        connection.execute("INSERT INTO things (id, n) VALUES (?, ?)", ("\udce9", 1))


def test_a_connection_made_beside_a_live_one_leaves_it_its_write_ahead_log(tmp_path: Path):
    # Closing any descriptor of a file drops every POSIX lock the process holds on it: a
    # connection that opened and closed one (to set the file's mode) had left the live
    # one unlocked, a reader elsewhere closing took itself for the last and deleted the
    # write-ahead log under it, and the gateway's next ledger rows were lost.
    database = open_database(None, tmp_path)
    path = tmp_path / "hxgw.db"
    with database.connect() as first:
        first.execute("CREATE TABLE t (n INTEGER)")
        first.execute("INSERT INTO t VALUES (1)")
        with database.connect():
            read = (f"import sqlite3; c = sqlite3.connect({str(path)!r});"
                    " c.execute('SELECT n FROM t').fetchall(); c.close()")
            subprocess.run([sys.executable, "-c", read], check=True, timeout=30)
            assert path.with_name("hxgw.db-wal").exists()
