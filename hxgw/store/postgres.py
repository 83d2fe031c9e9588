"""The shared store: PostgreSQL through psycopg 3, for several gateway instances.

Statements are written with `?` placeholders for both stores; here they become psycopg's
`%s` (and a literal `%` is doubled), so no caller knows which driver it talks to.

Every session is bounded, so a server that stops answering costs a thread a bounded
wait, never all of it: a statement runs at most STATEMENT_TIMEOUT (a lock held by a
forgotten `psql`), and TCP keepalives and a user timeout find a server that vanished
(a host gone, a network cut) in about a minute, where the kernel's defaults take
fifteen. A URL's own keepalive settings win. A server that is there and never answers (a
paused host, a stopped postmaster: its kernel acknowledges every packet, so none of
those fire) is given up on the client's side: each wait for the server ends after
`answer_within` seconds, and the session with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.abc import RV, PQGen

from hxgw.store.database import Connection, Database, Dialect, Row, RowRefused, StoreError
from hxgw.store.postgres_url import postgres_url_parts

STATEMENT_TIMEOUT = 30.0
"""Seconds; no statement of the gateway's comes near it but a migration, which lifts it."""
ANSWER_MARGIN = 5.0
"""Seconds past STATEMENT_TIMEOUT a session waits for an answer by default: the server's
own limit, and its error, come first from a server that still runs."""
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,  # seconds a silent connection waits before the first probe
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms that sent data may go unacknowledged
}

# Any constant works, as long as every exclusive transaction of hxgw uses the same one.
_EXCLUSIVE_LOCK = 0x68786777  # "hxgw"


def _native(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase(Database):
    dialect: Dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.where!r})"

    @property
    def where(self) -> str:
        """The database as a log line may name it: never the password."""
        parts = postgres_url_parts(self.url) or {}
        user = f"{parts['user']}@" if "user" in parts else ""
        port = f":{parts['port']}" if "port" in parts else ""
        host, db = parts.get("host", "localhost"), parts.get("dbname", "")
        if host.startswith("/"):  # a socket directory
            return f"PostgreSQL postgresql://{user}/{db}?host={host}"
        return f"PostgreSQL postgresql://{user}{host}{port}/{db}"

    def connect(self, *, answer_within: float | None = None) -> Connection:
        given = postgres_url_parts(self.url) or {}
        probes: dict[str, Any] = {k: v for k, v in KEEPALIVES.items() if k not in given}
        raw = None
        try:
            raw = _BoundedConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout)),
                application_name="hxgw",
                **probes,
            )
            raw.answer_within = answer_within or self.statement_timeout + ANSWER_MARGIN
            # SET, not the `options` parameter, which would replace the URL's own.
            milliseconds = round(self.statement_timeout * 1000)
            raw.execute(f"SET statement_timeout = {milliseconds:d}")
        except psycopg.Error as exc:
            if raw is not None:
                raw.close()
            raise StoreError(f"{self.where}: {_first_line(exc)}") from exc
        return PostgresConnection(raw, self.where)


class _BoundedConnection(psycopg.Connection[Row]):
    """psycopg's connection, whose every wait for the server (a statement, a result, a
    commit: all go through `wait`) ends after `answer_within` seconds."""

    answer_within: float | None = None

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        bound = timeout if timeout is not None else self.answer_within
        try:
            return super().wait(gen, interval, bound)
        except psycopg.errors._WaitTimeout:  # what psycopg's wait() raises past `timeout`
            # Halfway through the protocol the session cannot be used again; closed, a
            # transaction's exit no longer waits on the server to roll back.
            self.pgconn.finish()
            raise psycopg.OperationalError(f"no answer from the server in {bound:g}s") from None


class PostgresConnection(Connection):
    dialect: Dialect = "postgresql"

    def __init__(self, raw: _BoundedConnection, where: str) -> None:
        self.raw = raw
        self.where = where

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        # A number out of range, a lone surrogate no encoding takes, a key past what an
        # index holds (2704 bytes: an upstream's id in a billed-apart row), ...
        except (
            psycopg.DataError,
            psycopg.errors.ProgramLimitExceeded,
            OverflowError,
            UnicodeEncodeError,
        ) as exc:
            raise RowRefused(f"{self.where}: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {_first_line(exc)}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._errors(), self.raw.cursor() as cursor:
            cursor.execute(_native(sql), tuple(params))
            return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._errors(), self.raw.cursor() as cursor:
            cursor.executemany(_native(sql), rows)

    def changed(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._errors(), self.raw.cursor() as cursor:
            cursor.execute(_native(sql), tuple(params))
            return cursor.rowcount

    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[None]:
        bound = self.raw.answer_within
        if exclusive:
            # Exclusive transactions are migrations: one on a large ledger, or a wait
            # for another instance's, may rightly take longer than any query.
            self.raw.answer_within = None
        try:
            with self._errors(), self.raw.transaction():
                if exclusive:
                    self.raw.execute("SET LOCAL statement_timeout = 0")
                    self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_EXCLUSIVE_LOCK,))
                yield
        finally:
            self.raw.answer_within = bound

    def close(self) -> None:
        self.raw.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
