"""The key store on SQLite and PostgreSQL: secrets shown once and kept as digests,
changes, rotation with a grace period, revocation, and what a serving gateway sees."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable

import pytest

from hxgw.config import ClientKey
from hxgw.config.schema import KeyLimits
from hxgw.keys.book import READ_WAIT, REVOKED, ConfigSays, StoredKeys
from hxgw.keys.store import KeyStore, KeyStoreError
from hxgw.keys.stored_key import MIGRATIONS
from hxgw.store import Connection, Database, StoreError
from hxgw.store.migrate import migrate

NO_CONFIG_KEYS = ConfigSays(frozenset())


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def test_a_new_key_is_stored_as_its_digest_only(database: Database):
    store = KeyStore(database)
    with store.connect() as connection:
        secret = store.create(connection, "app", {"rpm": 5})
        (key,) = store.all(connection)
        rows = connection.execute("SELECT * FROM client_keys")
    assert secret.startswith("sk-hx-") and len(secret) > 40
    assert key.digest == _digest(secret).hex()
    assert secret not in repr(rows)
    assert key.limits() == KeyLimits(rpm=5)


def test_a_live_name_cannot_be_taken_twice_but_a_revoked_one_can(database: Database):
    store = KeyStore(database)
    with store.connect() as connection:
        store.create(connection, "app", {})
        with pytest.raises(KeyStoreError, match="exists"):
            store.create(connection, "app", {})
        store.revoke(connection, "app")
        store.create(connection, "app", {"tpm": 100})
        (key,) = store.all(connection)
    assert key.revoked is None and key.tpm == 100


def test_an_update_changes_only_what_it_names(database: Database):
    store = KeyStore(database)
    with store.connect() as connection:
        store.create(connection, "app", {"rpm": 5, "groups": ["a", "b"]})
        key = store.update(connection, "app", {"budget": 2.5, "budget_period": "7d"})
    assert (key.rpm, key.groups, key.budget, key.budget_period) == (5, ("a", "b"), 2.5, "7d")


def test_the_gateway_sees_a_rotated_key_old_and_new_until_the_grace_ends(
    database: Database, book: StoredKeys
):
    store = KeyStore(database)
    with store.connect() as connection:
        old = store.create(connection, "app", {})
        new, _ = store.rotate(connection, "app", grace=3600)
    book.refresh(NO_CONFIG_KEYS)
    assert book.by_digest[_digest(new)].expires is None
    grace_end = book.by_digest[_digest(old)].expires
    assert grace_end is not None and 3590 < grace_end - time.time() <= 3600


def test_a_rotated_secret_ends_with_its_key_when_the_key_expires_before_the_grace(
    database: Database, book: StoredKeys
):
    # The grace is for clients to move to the new secret, not past the key's own end.
    store = KeyStore(database)
    ends = time.time() + 60
    with store.connect() as connection:
        old = store.create(connection, "app", {"expires": ends})
        store.rotate(connection, "app", grace=7 * 86_400)
    book.refresh(NO_CONFIG_KEYS)
    assert book.by_digest[_digest(old)].expires == pytest.approx(ends)


def test_a_rotation_gives_the_key_as_its_own_transaction_found_it(database: Database):
    # What `hxgw keys rotate` tells of the old secret it ends: read apart from the
    # rotation, it missed one that another rotation run at once had just made.
    store = KeyStore(database)
    with store.connect() as connection:
        first = store.create(connection, "app", {})
        second, found_first = store.rotate(connection, "app", grace=3600)
        _, found_second = store.rotate(connection, "app", grace=3600)
    assert found_first.digest == _digest(first).hex() and found_first.previous_digest is None
    assert found_second.digest == _digest(second).hex()
    assert found_second.previous_digest == _digest(first).hex()


def test_a_revoked_key_is_gone_from_what_the_gateway_sees_at_the_next_refresh(
    database: Database, book: StoredKeys
):
    store = KeyStore(database)
    with store.connect() as connection:
        secret = store.create(connection, "app", {})
    assert book.refresh(NO_CONFIG_KEYS)
    assert book.by_digest[_digest(secret)].name == "app"
    assert not book.refresh(NO_CONFIG_KEYS)  # nothing changed: nothing read again
    with store.connect() as connection:
        store.revoke(connection, "app")
    assert book.refresh(NO_CONFIG_KEYS)
    assert _digest(secret) not in book.by_digest


def test_a_revoked_key_s_secrets_old_and_new_stay_known_as_revoked_when_its_name_is_retaken(
    database: Database, book: StoredKeys
):
    store = KeyStore(database)
    with store.connect() as connection:
        old = store.create(connection, "app", {})
        new, _ = store.rotate(connection, "app", grace=3600)
        store.revoke(connection, "app")
    book.refresh(NO_CONFIG_KEYS)
    assert book.ended == {_digest(old): ("app", REVOKED), _digest(new): ("app", REVOKED)}
    with store.connect() as connection:
        store.create(connection, "app", {})
    book.refresh(NO_CONFIG_KEYS)
    assert book.ended == {_digest(old): ("app", REVOKED), _digest(new): ("app", REVOKED)}


def test_a_change_made_by_a_clock_behind_the_others_is_still_seen(
    database: Database, book: StoredKeys, monkeypatch: pytest.MonkeyPatch
):
    store = KeyStore(database)
    with store.connect() as connection:
        secret = store.create(connection, "app", {})
    assert book.refresh(NO_CONFIG_KEYS)
    behind = time.time() - 5  # another host's `hxgw keys`, its clock 5 s slow
    monkeypatch.setattr(time, "time", lambda: behind)
    with store.connect() as connection:
        store.revoke(connection, "app")
    monkeypatch.undo()
    assert book.refresh(NO_CONFIG_KEYS)
    assert _digest(secret) not in book.by_digest


def test_a_stored_key_with_a_config_key_name_is_ignored(
    database: Database, book: StoredKeys
):
    store = KeyStore(database)
    with store.connect() as connection:
        secret = store.create(connection, "ci", {})
    book.refresh(ConfigSays(frozenset({"ci"})))
    assert _digest(secret) not in book.by_digest


def test_changing_a_misspelt_key_names_the_one_meant_else_where_to_look(database: Database):
    store = KeyStore(database)
    with store.connect() as connection:
        store.create(connection, "billing", {})
        with pytest.raises(KeyStoreError, match="no key named 'biling' \\(did you mean 'billing'"):
            store.update(connection, "biling", {"rpm": 1})
        with pytest.raises(KeyStoreError, match="'reports' \\(hxgw keys list shows them\\)"):
            store.revoke(connection, "reports")


def test_changing_a_missing_or_revoked_key_says_so(database: Database):
    store = KeyStore(database)
    with store.connect() as connection:
        with pytest.raises(KeyStoreError, match="no key named 'ghost'"):
            store.rotate(connection, "ghost", grace=0)
        store.create(connection, "app", {})
        store.revoke(connection, "app")
        with pytest.raises(KeyStoreError, match="revoked"):
            store.update(connection, "app", {"rpm": 1})


async def test_a_waiter_for_the_next_read_sees_a_key_made_before_it_came(
    database: Database, book: StoredKeys
):
    watcher = asyncio.create_task(book.watch(lambda: NO_CONFIG_KEYS))
    try:
        await asyncio.sleep(0.2)  # the watcher is between reads
        store = KeyStore(database)
        with store.connect() as connection:
            secret = store.create(connection, "app", {})
        assert _digest(secret) not in book.by_digest
        await asyncio.wait_for(book.next_read(), READ_WAIT + 1)
        assert _digest(secret) in book.by_digest
    finally:
        watcher.cancel()


async def test_a_waiter_that_leaves_does_not_end_the_others_wait(book: StoredKeys):
    watcher = asyncio.create_task(book.watch(lambda: NO_CONFIG_KEYS))
    try:
        leaving, staying = (asyncio.create_task(book.next_read()) for _ in range(2))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.wait_for(staying, READ_WAIT + 1)
        assert leaving.cancelled()
    finally:
        watcher.cancel()


async def test_with_no_read_coming_a_waiter_gives_up_after_read_wait(book: StoredKeys):
    started = time.monotonic()
    await book.next_read()  # nothing watches the store
    assert time.monotonic() - started >= READ_WAIT - 0.1


def test_keys_whose_spend_cannot_be_read_are_let_in_only_once_it_can(database: Database):
    # A key let in before its budget's spend is known would start that budget afresh.
    seen: list[list[str]] = []

    def seed(connection: Connection, keys: Iterable[ClientKey]) -> None:
        seen.append([key.name for key in keys])
        if len(seen) == 1:
            raise StoreError("the ledger cannot be read")

    store = KeyStore(database)
    with store.connect() as connection:
        secret = store.create(connection, "app", {"budget": 1})
    book = StoredKeys(store, seed=seed)
    with pytest.raises(StoreError):
        book.refresh(NO_CONFIG_KEYS)
    assert book.by_digest == {} and not book.ever_read
    assert book.refresh(NO_CONFIG_KEYS)
    assert seen == [["app"], ["app"]] and _digest(secret) in book.by_digest
    book.close()


def test_a_revocation_is_published_while_the_spend_of_a_new_key_cannot_be_read(
    database: Database,
):
    failing = False

    def seed(connection: Connection, keys: Iterable[ClientKey]) -> None:
        if failing:
            raise StoreError("the ledger cannot be read")

    store = KeyStore(database)
    with store.connect() as connection:
        old = store.create(connection, "old", {})
    book = StoredKeys(store, seed=seed)
    book.refresh(NO_CONFIG_KEYS)
    with store.connect() as connection:
        store.revoke(connection, "old")
        new = store.create(connection, "new", {"budget": 1})
    failing = True
    with pytest.raises(StoreError):
        book.refresh(NO_CONFIG_KEYS)
    assert book.ended.get(_digest(old)) == ("old", REVOKED) and _digest(old) not in book.by_digest
    assert _digest(new) not in book.by_digest
    book.close()


def test_a_key_made_before_per_user_limits_keeps_its_own_and_gets_none_per_user(
    database: Database,
):
    with database.connect() as connection:
        migrate(connection, MIGRATIONS, upto=2)
        with connection.transaction():  # as a gateway that knew only v2 wrote it
            connection.execute(
                "INSERT INTO client_keys (name, digest, rpm, budget_period, created, updated)"
                " VALUES ('old', 'ab', 5, '1d', 1.0, 1.0)")
    store = KeyStore(database)
    with store.connect() as connection:
        store.update(connection, "old", {"user_rpm": 2})
        key = store.get(connection, "old")
    assert key is not None
    assert (key.limits(), key.per_user()) == (KeyLimits(rpm=5), KeyLimits(rpm=2))
    (client_key,) = key.client_keys()
    assert client_key.per_user == KeyLimits(rpm=2)


def test_a_stored_key_that_gives_its_end_users_nothing_gives_them_the_config_s_default(
    database: Database, book: StoredKeys
):
    store = KeyStore(database)
    with store.connect() as connection:
        plain = store.create(connection, "plain", {"rpm": 5})
        own = store.create(connection, "own", {"user_tpm": 900})
    book.refresh(ConfigSays(frozenset(), KeyLimits(rpm=20)))
    assert book.by_digest[_digest(plain)].per_user == KeyLimits(rpm=20)
    assert book.by_digest[_digest(own)].per_user == KeyLimits(tpm=900)


def test_a_changed_default_reaches_the_stored_keys_at_the_next_read(
    database: Database, book: StoredKeys
):
    store = KeyStore(database)
    with store.connect() as connection:
        secret = store.create(connection, "app", {})
    book.refresh(ConfigSays(frozenset(), KeyLimits(rpm=20)))
    assert book.refresh(ConfigSays(frozenset(), KeyLimits(rpm=40)))  # the table is unchanged
    assert book.by_digest[_digest(secret)].per_user == KeyLimits(rpm=40)
    assert book.refresh(NO_CONFIG_KEYS)
    assert book.by_digest[_digest(secret)].per_user is None
