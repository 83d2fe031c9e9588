"""The ledger's table and its migrations (see hxgw.store.migrate: steps are only added)."""

from __future__ import annotations

import hashlib

from hxgw.store import Migration
from hxgw.usage.row import COLUMNS

TABLE = "usage_ledger"

MIGRATIONS = (
    Migration(
        component="usage",
        version=1,
        description="the usage ledger: one row per request",
        statements=(
            f"CREATE TABLE {TABLE} ("
            " request_id TEXT NOT NULL,"
            " key_name TEXT NOT NULL,"
            " route TEXT NOT NULL,"
            " model_group TEXT,"
            " model TEXT,"
            " status INTEGER NOT NULL,"
            " prompt_tokens BIGINT NOT NULL DEFAULT 0,"
            " completion_tokens BIGINT NOT NULL DEFAULT 0,"
            " total_tokens BIGINT NOT NULL DEFAULT 0,"
            " cost DOUBLE PRECISION NOT NULL DEFAULT 0,"
            " stream BOOLEAN NOT NULL DEFAULT FALSE,"
            " disconnected BOOLEAN NOT NULL DEFAULT FALSE,"
            " failovers INTEGER NOT NULL DEFAULT 0,"
            " started DOUBLE PRECISION NOT NULL,"
            " first_byte DOUBLE PRECISION,"
            " ended DOUBLE PRECISION NOT NULL,"
            # Time first: rows arrive in time order, so each batch appends to the end
            # of this index instead of touching pages all over it (request ids are
            # random). Measured: a batch's commit took 9.5% of the gateway's CPU.
            " PRIMARY KEY (started, request_id))",
        ),
    ),
    Migration(
        component="usage",
        version=2,
        description="an index for one key's reports over a time window",
        statements=(f"CREATE INDEX {TABLE}_key_started ON {TABLE} (key_name, started)",),
    ),
    Migration(
        component="usage",
        version=3,
        description="where a row's tokens come from: reported by the upstream, or estimated",
        statements=(f"ALTER TABLE {TABLE} ADD COLUMN usage_source TEXT NOT NULL DEFAULT 'none'",),
    ),
    Migration(
        component="usage",
        version=4,
        description="how a request ended, as its access line says: a 200 may have failed",
        statements=(f"ALTER TABLE {TABLE} ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok'",),
    ),
    Migration(
        component="usage",
        version=5,
        description="the parts of a row's tokens the upstream reported: cached, reasoning",
        statements=tuple(
            f"ALTER TABLE {TABLE} ADD COLUMN {column} BIGINT NOT NULL DEFAULT 0"
            for column in ("cached_tokens", "cache_write_tokens", "reasoning_tokens")
        ),
    ),
    Migration(
        component="usage",
        version=6,
        description="who in the client's app a request was for, as the client said",
        statements=(f"ALTER TABLE {TABLE} ADD COLUMN end_user TEXT",),
    ),
    Migration(
        component="usage",
        version=7,
        description="an index for one end user's spend: each one's budget is read back alone",
        # Partial: only the rows that name an end user pay for it when written.
        statements=(
            f"CREATE INDEX {TABLE}_key_user_started ON {TABLE} (key_name, end_user, started)"
            " WHERE end_user IS NOT NULL",
        ),
    ),
    Migration(
        component="usage",
        version=8,
        description="the team a request's key was in: a team's spend is read by it",
        statements=(
            f"ALTER TABLE {TABLE} ADD COLUMN team TEXT",
            # Partial: only the rows of keys in a team pay for it when written.
            f"CREATE INDEX {TABLE}_team_started ON {TABLE} (team, started) WHERE team IS NOT NULL",
        ),
    ),
)

BILLED_AS = "usage-of-"
"""The start of the request id of a row billed apart from any request (a background
response's, a batch's), whose own id follows: its tokens and cost count, but it is no
request, and its start and end (when the job was made, when it was read ended) are no
request's latency, nor its outcome an error. No request's id begins so, in any case
(hxgw.pipeline.request_id)."""
MOST_KEPT = 1024
"""The most characters of an object's id a row billed apart keeps as they are: with its
start, PostgreSQL indexes a key of at most 2704 bytes, and the id is an upstream's (bound,
and so ASCII), as long as it likes."""


def billed_apart(object_id: str) -> str:
    """The request id of the row billed apart for the upstream object `object_id` (a
    background response, a batch): `BILLED_AS` and the id, or, for an id longer than
    MOST_KEPT, its start and a digest of it, the same on every read that bills it."""
    if len(object_id) <= MOST_KEPT:
        return BILLED_AS + object_id
    digest = hashlib.sha256(object_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{BILLED_AS}{object_id[:64]}~sha256:{digest}"


A_REQUEST = f"request_id NOT LIKE '{BILLED_AS}%'"
"""SQL true of a row that is a request's."""

LEFT = ("client_gone", "client_stalled")
"""The outcomes of an answer the client did not take whole: it left, or read no more."""
FAILED = f"{A_REQUEST} AND outcome NOT IN {LEFT!r} AND (status >= 400 OR outcome <> 'ok')"
"""SQL true of a row whose request failed: an error status, or a 200 whose stream the
upstream broke off. A client that left, or stopped reading, has not failed, whenever
it did: before the first byte its row's status is 499. A batch that failed is no
request that did."""

# A row already there stays: replaying a spooled batch that had partly committed before
# the store went away adds each row once. Unless it was an estimate and this one says what
# the upstream reported: a background response's row, made by its stream cut short, then
# by a read of the finished response (hxgw.pipeline.billing.background). Table and columns are
# constants.
_NAMES, _MARKS = ", ".join(COLUMNS), ", ".join("?" for _ in COLUMNS)
_KEY = ("started", "request_id")
# The key stays the estimate's: the one whose stream made the response pays for it; so
# do the end user that request named and the team its key was in.
_KEPT = (*_KEY, "key_name", "end_user", "team")
_SET = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in _KEPT)
INSERT = (
    f"INSERT INTO {TABLE} ({_NAMES}) VALUES ({_MARKS})"  # noqa: S608
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {_SET}"
    f" WHERE {TABLE}.usage_source = 'estimated' AND excluded.usage_source = 'reported'"
)
