"""Who owns each file and batch, on SQLite and PostgreSQL: recorded once, asked for in
pages of any size, forgotten on delete, and a store that cannot be reached is said."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hxgw.keys.owners import LOOKUP_CHUNK, Owners, OwnersUnavailable
from hxgw.store import Database, open_database


@pytest.fixture
async def owners(database: Database) -> AsyncIterator[Owners]:
    kept = Owners(database)
    yield kept
    await kept.close()


async def test_an_object_recorded_is_its_keys(owners: Owners):
    await owners.record("default", {"file-1": "a", "batch_1": "b"})
    assert await owners.of("default", ["file-1", "batch_1", "file-2"]) == {
        "file-1": "a", "batch_1": "b"}


async def test_the_first_owner_keeps_an_object(owners: Owners):
    await owners.record("default", {"file-1": "a"})
    await owners.record("default", {"file-1": "b"})
    assert await owners.of("default", ["file-1"]) == {"file-1": "a"}


async def test_the_same_id_on_two_upstreams_is_two_objects(owners: Owners):
    await owners.record("one", {"file-1": "a"})
    await owners.record("two", {"file-1": "b"})
    assert await owners.of("two", ["file-1"]) == {"file-1": "b"}


async def test_a_page_of_ten_thousand_ids_is_asked_for_in_chunks(owners: Owners):
    ids = [f"file-{n}" for n in range(LOOKUP_CHUNK * 20)]
    await owners.record("default", dict.fromkeys(ids[::7], "a"))
    assert await owners.of("default", ids) == dict.fromkeys(ids[::7], "a")


async def test_a_forgotten_object_has_no_owner(owners: Owners):
    await owners.record("default", {"file-1": "a"})
    await owners.forget("default", "file-1")
    assert await owners.of("default", ["file-1"]) == {}


async def test_a_store_that_cannot_be_reached_is_a_503_that_says_so(tmp_path: Path):
    (tmp_path / "state").write_text("a file where the state directory should be")
    owners = Owners(open_database(None, tmp_path / "state"))
    with pytest.raises(OwnersUnavailable, match="cannot tell which key owns") as raised:
        await owners.of("default", ["file-1"])
    assert raised.value.status == 503
    await owners.close()


async def test_a_keys_first_object_is_when_its_oldest_was_recorded(owners: Owners):
    assert await owners.first_made("default", "a") is None
    before = time.time()
    await owners.record("default", {"file-1": "a"})
    await owners.record("default", {"file-2": "a", "file-3": "b"})
    first = await owners.first_made("default", "a")
    assert first is not None and before <= first <= await owners.first_made("default", "b")


async def test_a_database_that_holds_a_call_up_is_a_503_within_the_call_wait(tmp_path: Path):
    database = open_database(None, tmp_path)
    owners = Owners(database, call_wait=0.2)
    await owners.record("default", {"file-1": "a"})  # made and migrated
    with _locked(database), pytest.raises(OwnersUnavailable, match=r"answer within 0\.2 s"):
        await owners.record("default", {"file-2": "a"})


async def test_closing_does_not_wait_for_a_call_the_database_holds_up(tmp_path: Path):
    database = open_database(None, tmp_path)
    others = set(threading.enumerate())
    owners = Owners(database, call_wait=0.2)
    await owners.check()
    with _locked(database):
        with pytest.raises(OwnersUnavailable):
            await owners.record("default", {"file-1": "a"})
        await owners.close()
        [thread] = set(threading.enumerate()) - others
        assert thread.is_alive() and thread.daemon  # still held up, and not waited for


@contextmanager
def _locked(database: Database) -> Iterator[None]:
    """Another writer holding the SQLite file's lock."""
    with database.connect() as other, other.transaction():
        other.execute("INSERT INTO held_objects VALUES ('x', 'lock', 'x', 0)")
        yield
