"""Each key reaches only the files and batches it made, through the real gateway and
the official python SDK: another app's are missing from its lists and not found by id,
a batch's output file is its owner's, and the master key sees them all. With
PostgreSQL two instances agree on who owns what."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from hxgw.endpoints import BATCHES_LIST
from hxgw.pipeline.owners import CLOCK_SLACK, MAX_PAGES
from hxgw.upstream.affinity import unbind
from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, new_key
from tests.postgres import (  # noqa: F401 -- fixtures
    Postgres,
    own_postgres,
    postgres_server,
    postgres_url,
)
from tests.raw_upstream import read_request, reply, serving

upstream = one_gateway.upstream
PAGE = BATCHES_LIST.listing.most if BATCHES_LIST.listing else 0
"""The most batches a page of the upstream's list holds, as the gateway asks it."""
LINES = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
BATCH = {"endpoint": "/v1/chat/completions", "completion_window": "24h"}


class Apps:
    """A gateway with two app keys, `a` and `b`, from its keys file."""

    def __init__(self, gateway: Gateway, secrets: dict[str, str]) -> None:
        self.gateway, self.secrets = gateway, secrets

    def sdk(self, app: str, gateway: Gateway | None = None) -> openai.AsyncOpenAI:
        gateway = gateway or self.gateway
        key = gateway.key if app == "master" else self.secrets[app]
        return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)

    def auth(self, app: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[app]}"}


def _keys_file(tmp_path: Path) -> tuple[str, dict[str, str]]:
    secrets = {app: new_key(f"sk-{app}") for app in ("a", "b")}
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": app, "key": secret}
                                             for app, secret in secrets.items()]}))
    keys.chmod(0o600)
    return str(keys), secrets


async def _start_apps(start_gateway: StartGateway, tmp_path: Path,
                      gateway: dict[str, object] | None = None,
                      env: dict[str, str] | None = None) -> Apps:
    """A gateway with the two app keys, and `gateway` settings beside its auth."""
    keys, secrets = _keys_file(tmp_path)
    settings = {"auth": {"keys_file": keys}, **(gateway or {})}
    return Apps(await start_gateway(gateway=settings, env=env), secrets)


APP_PAIRS = 40
"""Pairs of app keys in the keys file of the gateway the module's tests share: each test
takes a pair of its own, which owns nothing yet, as the keys of a gateway of its own."""


@pytest.fixture(scope="module")
async def apps_gateway(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[tuple[Gateway, Iterator[dict[str, str]]]]:
    """One gateway for the module's tests, on tests/one_gateway.py's settings and a keys
    file of APP_PAIRS pairs of app keys; and the pairs its tests have yet to take."""
    directory = tmp_path_factory.mktemp("apps-gateway")
    pairs = [{app: new_key(f"sk-{app}") for app in ("a", "b")} for _ in range(APP_PAIRS)]
    keys = directory / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": f"{app}{i}", "key": secret}
        for i, pair in enumerate(pairs) for app, secret in pair.items()]}))
    keys.chmod(0o600)
    async with one_gateway.serving_shared(directory, module_upstream[1],
                                          auth={"keys_file": str(keys)}) as shared:
        yield shared, iter(pairs)


@pytest.fixture
def apps(
    apps_gateway: tuple[Gateway, Iterator[dict[str, str]]], upstream: tuple[FakeUpstream, str]
) -> Apps:
    """The module's gateway, with two app keys that own nothing yet (the master key's
    objects, and the gateway's metrics and ledger, are the module's)."""
    gateway, pairs = apps_gateway
    gateway.begin_test()
    return Apps(gateway, next(pairs))


async def _upload(sdk: openai.AsyncOpenAI, name: str = "input.jsonl") -> str:
    return (await sdk.files.create(file=(name, LINES), purpose="batch")).id


async def test_a_keys_file_list_shows_only_the_files_it_uploaded(apps: Apps):
    async with apps.sdk("a") as a, apps.sdk("b") as b:
        mine, theirs = await _upload(a, "a.jsonl"), await _upload(b, "b.jsonl")
        assert [f.id for f in (await a.files.list()).data] == [mine]
        assert [f.id for f in (await b.files.list()).data] == [theirs]


async def test_the_master_key_lists_every_keys_files_and_those_made_upstream(
    apps: Apps, fake: FakeUpstream
):
    fake.files.add_file(LINES, "made-upstream.jsonl")
    async with apps.sdk("a") as a, apps.sdk("b") as b, apps.sdk("master") as master:
        await _upload(a, "a.jsonl")
        await _upload(b, "b.jsonl")
        listed = sorted(f.filename for f in (await master.files.list()).data)
        assert listed == ["a.jsonl", "b.jsonl", "made-upstream.jsonl"]
        assert (await a.files.list()).data[0].filename == "a.jsonl"  # not the unowned one


async def test_another_keys_file_is_not_found_by_any_route_and_stays_upstream(
    apps: Apps, fake: FakeUpstream, client: aiohttp.ClientSession
):
    async with apps.sdk("b") as b:
        theirs = await _upload(b)
    batch = {"input_file_id": theirs, **BATCH}
    for method, path, body in [("GET", f"/v1/files/{theirs}", None),
                               ("GET", f"/v1/files/{theirs}/content", None),
                               ("DELETE", f"/v1/files/{theirs}", None),
                               ("GET", f"/v1/files?after={theirs}", None),
                               ("POST", "/v1/batches", batch)]:
        async with client.request(method, apps.gateway.url + path, json=body,
                                  headers=apps.auth("a")) as resp:
            answer = await resp.json()
            assert resp.status == 404, (method, path, answer)
            assert answer["error"]["message"] == f"No such object: {theirs!r}"
    assert len(fake.files.files) == 1 and fake.files.batches == {}


async def test_a_batch_and_its_output_file_are_its_owners_alone(apps: Apps):
    async with apps.sdk("a") as a, apps.sdk("b") as b:
        batch = await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
        done = await a.batches.retrieve(batch.id)
        assert done.output_file_id is not None
        assert (await a.files.content(done.output_file_id)).content.count(b'"custom_id"') == 1
        assert [x.id for x in (await a.batches.list()).data] == [batch.id]
        assert (await b.batches.list()).data == []
        for call in (b.batches.retrieve(batch.id), b.batches.cancel(batch.id),
                     b.files.retrieve(done.output_file_id)):
            with pytest.raises(openai.NotFoundError):
                await call


async def test_a_batch_whose_metadata_nests_as_deep_as_a_body_may_leaves_every_list_whole(
    apps: Apps,
):
    # A list nests each batch's metadata two levels deeper than the body that made it,
    # past what orjson writes: every key's list of batches had been a 500 while that
    # batch was on the upstream's page.
    nested: object = "deep"
    for _ in range(252):  # the body 254 levels deep, the most the gateway takes
        nested = [nested]
    async with apps.sdk("a") as a, apps.sdk("b") as b, apps.sdk("master") as master:
        batch = await a.batches.create(input_file_id=await _upload(a), **BATCH,  # type: ignore[arg-type]
                                       metadata={"deep": nested})  # type: ignore[dict-item]
        assert [x.id for x in (await a.batches.list()).data] == [batch.id]
        assert (await b.batches.list()).data == []
        assert batch.id in [x.id for x in (await master.batches.list()).data]


async def test_a_batch_output_file_the_master_key_first_sees_is_still_its_owners(apps: Apps):
    async with apps.sdk("a") as a, apps.sdk("master") as master:
        batch = await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
        done = await master.batches.retrieve(batch.id)  # completes it: the output file is made
        assert done.output_file_id is not None
        assert (await a.files.retrieve(done.output_file_id)).id == done.output_file_id


async def test_a_deleted_file_is_gone_for_its_owner_too(apps: Apps):
    async with apps.sdk("a") as a:
        mine = await _upload(a)
        assert (await a.files.delete(mine)).deleted
        with pytest.raises(openai.NotFoundError):
            await a.files.retrieve(mine)


async def test_a_keys_page_is_filled_from_past_other_keys_pages_of_the_upstream_list(apps: Apps):
    # Newest first: b's 101 batches fill the upstream's first page (100) before a's.
    async with apps.sdk("a") as a, apps.sdk("b") as b:
        mine = await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
        theirs = await _upload(b)
        for _ in range(101):
            await b.batches.create(input_file_id=theirs, **BATCH)  # type: ignore[arg-type]
        page = await a.batches.list(limit=5)
        assert [x.id for x in page.data] == [mine.id] and page.has_more is False
        listed = [x.id async for x in b.batches.list(limit=40)]  # the SDK pages through
        assert len(listed) == 101 == len(set(listed))


def _unowned_batches(fake: FakeUpstream, count: int, age: float = 0.0) -> None:
    """Batches made on the upstream without the gateway, `age` seconds ago."""
    made = fake.files.add_file(LINES)["id"]
    for _ in range(count):
        fake.files.create_batch({"input_file_id": made, **BATCH})
        [*_, newest] = fake.files.batches.values()
        newest["created_at"] -= int(age)


async def test_a_key_found_past_more_pages_of_others_than_a_page_reads_once_found(
    apps: Apps, fake: FakeUpstream
):
    async with apps.sdk("a") as a:
        mine = await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
        _unowned_batches(fake, (MAX_PAGES + 1) * PAGE)
        page = await a.batches.list(limit=5)
    assert [x.id for x in page.data] == [mine.id] and page.has_more is False
    assert fake.files.pages_served == MAX_PAGES + 2


async def test_a_raw_upstream_id_as_after_is_not_found_before_the_upstream(
    apps: Apps, fake: FakeUpstream, client: aiohttp.ClientSession
):
    async with apps.sdk("b") as b:
        await _upload(b)
    [theirs] = fake.files.files
    async with client.get(apps.gateway.url + f"/v1/files?after={theirs}",
                          headers=apps.auth("a")) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["param"] == "after"
    assert fake.files.pages_served == 0


async def test_a_list_asked_for_with_an_odd_limit_or_order_gets_400(
    apps: Apps, client: aiohttp.ClientSession
):
    for query, param in [("limit=%C2%B2", "limit"), ("limit=2&limit=3", "limit"),
                         ("order=asc&order=desc", "order"), ("order=newest", "order"),
                         ("limit=" + "1" * 5000, "limit")]:
        async with client.get(apps.gateway.url + f"/v1/files?{query}",
                              headers=apps.auth("a")) as resp:
            assert resp.status == 400, query
            assert (await resp.json())["error"]["param"] == param


async def test_a_list_that_finds_none_of_the_keys_objects_in_time_is_a_504_not_an_empty_page(
    start_gateway: StartGateway, tmp_path: Path, fake: FakeUpstream
):
    apps = await _start_apps(start_gateway, tmp_path, gateway={"timeouts": {"total": 2}})
    async with apps.sdk("a") as a:
        await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
        _unowned_batches(fake, 10 * PAGE)
        # The list is read for a second (half the total timeout), at 0.3 s a page at least.
        fake.files.page_delay = 0.3
        with pytest.raises(openai.APIStatusError) as raised:
            await a.batches.list()
    assert raised.value.status_code == 504
    assert "none of this key's yet" in raised.value.message
    # Of eleven, the key's on the last: at least one is read, and no more than four, by
    # whose end the second has passed (a slow machine reads fewer).
    assert 1 <= fake.files.pages_served <= 4


async def test_a_keys_list_ends_at_objects_made_long_before_its_first(
    apps: Apps, fake: FakeUpstream
):
    _unowned_batches(fake, 3 * PAGE, age=2 * CLOCK_SLACK)
    async with apps.sdk("a") as a:
        mine = await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
        page = await a.batches.list()
    assert [x.id for x in page.data] == [mine.id] and page.has_more is False
    assert fake.files.pages_served == 1  # of four


async def test_a_key_that_owns_nothing_gets_an_empty_list_from_one_upstream_page(
    apps: Apps, fake: FakeUpstream
):
    _unowned_batches(fake, 3 * PAGE)
    async with apps.sdk("a") as a:
        page = await a.batches.list()
    assert page.data == [] and page.has_more is False
    assert fake.files.pages_served == 1


@pytest.mark.parametrize("failure", [
    "cursors_expire_after",  # a 404 naming the first page's last batch, expired meanwhile
    "pages_fail_after",  # a proxy's 500 quoting the URL, the cursor in it
])
async def test_an_upstream_error_past_the_first_page_is_a_502_that_names_no_other_keys_object(
    apps: Apps, fake: FakeUpstream, client: aiohttp.ClientSession, failure: str
):
    async with apps.sdk("a") as a:
        await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
    _unowned_batches(fake, 2 * PAGE)
    setattr(fake.files, failure, 1)
    async with client.get(apps.gateway.url + "/v1/batches", headers=apps.auth("a")) as resp:
        text = await resp.text()
    assert resp.status == 502 and "page 2" in text
    assert not any(ident in text for ident in fake.files.batches)
    assert fake.files.pages_served == 2


async def test_the_master_keys_list_asked_for_with_an_odd_limit_or_order_gets_400_too(
    apps: Apps, client: aiohttp.ClientSession
):
    # Its lists go upstream as asked: a query no API takes had met a proxy's 500.
    for path, query, param in [("files", "limit=abc", "limit"), ("files", "order=up", "order"),
                               ("batches", "limit=1.5", "limit"), ("batches", "limit=", "limit")]:
        async with client.get(apps.gateway.url + f"/v1/{path}?{query}",
                              headers=apps.gateway.auth) as resp:
            assert resp.status == 400, query
            assert (await resp.json())["error"]["param"] == param


async def test_a_page_size_outside_the_apis_range_gets_400(
    apps: Apps, client: aiohttp.ClientSession
):
    for limit in ("0", "101", "ten"):
        async with client.get(apps.gateway.url + f"/v1/batches?limit={limit}",
                              headers=apps.auth("a")) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "limit"


@pytest.mark.postgres
async def test_two_instances_on_one_postgresql_agree_on_who_owns_a_file(
    start_gateway: StartGateway, tmp_path: Path, postgres_url: str  # noqa: F811
):
    keys, secrets = _keys_file(tmp_path)
    config = {"gateway": {"auth": {"keys_file": keys}}, "env": {"DATABASE_URL": postgres_url}}
    first = Apps(await start_gateway(**config), secrets)  # type: ignore[arg-type]
    second = await start_gateway(**config)  # type: ignore[arg-type]
    async with first.sdk("a") as a_first, first.sdk("a", second) as a_second, \
            first.sdk("b", second) as b_second:
        mine = await _upload(a_first)
        assert (await a_second.files.retrieve(mine)).id == mine
        assert [f.id for f in (await a_second.files.list()).data] == [mine]
        assert (await b_second.files.list()).data == []


async def test_without_a_store_only_the_master_key_reaches_files(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    keys, secrets = _keys_file(tmp_path)
    gateway = await start_gateway(gateway={"auth": {"keys_file": keys}},
                                  env={"HX_STATE_DIR": "/proc/hxgw-no-state"})
    async with client.get(gateway.url + "/v1/files",
                          headers={"Authorization": f"Bearer {secrets['a']}"}) as resp:
        assert resp.status == 503
        assert "no store" in (await resp.json())["error"]["message"]
    async with client.get(gateway.url + "/v1/files", headers=gateway.auth) as resp:
        assert resp.status == 200


@pytest.mark.postgres
async def test_a_key_makes_no_file_while_postgresql_is_down(
    start_gateway: StartGateway, tmp_path: Path, fake: FakeUpstream,
    own_postgres: Postgres,  # noqa: F811
):
    apps = await _start_apps(start_gateway, tmp_path,
                             env={"DATABASE_URL": own_postgres.new_database()})
    async with apps.sdk("a") as a:
        await _upload(a)  # the table is made and the connection kept
        own_postgres.stop(mode="immediate")
        with pytest.raises(openai.APIStatusError) as raised:
            await _upload(a)
    assert raised.value.status_code == 503
    assert len(fake.files.files) == 1  # none made upstream that a could not reach


@pytest.mark.postgres
async def test_the_master_keys_delete_while_postgresql_is_down_is_done_and_logged(
    start_gateway: StartGateway, tmp_path: Path, fake: FakeUpstream,
    own_postgres: Postgres,  # noqa: F811
):
    apps = await _start_apps(start_gateway, tmp_path,
                             env={"DATABASE_URL": own_postgres.new_database()})
    async with apps.sdk("a") as a, apps.sdk("master") as master:
        made = await _upload(a)
        own_postgres.stop(mode="immediate")
        assert (await master.files.delete(made)).deleted
    assert fake.files.files == {}
    assert "the owners' database could not be told" in apps.gateway.logs()


async def test_a_group_header_that_is_not_utf8_leaves_metrics_and_the_ledger_whole(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # Its own: it looks for no ledger failure in logs an earlier test's late work may write.
    apps = await _start_apps(start_gateway, tmp_path)
    host, port = apps.gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /v1/files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 + f"Authorization: Bearer {apps.secrets['a']}\r\n".encode()
                 + b"X-HX-Model-Group: \xe9\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 404")
    writer.close()
    master = {"Authorization": f"Bearer {apps.gateway.key}"}
    async with client.get(apps.gateway.url + "/metrics", headers=master) as resp:
        assert resp.status == 200
    await asyncio.sleep(1.5)  # past a ledger batch
    assert "usage ledger writer failed" not in apps.gateway.logs()


@pytest.mark.postgres
async def test_a_batch_upstream_whose_id_holds_a_nul_leaves_every_keys_list_whole(
    start_gateway: StartGateway, tmp_path: Path, fake: FakeUpstream,
    postgres_url: str,  # noqa: F811
):
    # PostgreSQL takes no NUL in a text, and the owners of a list's batches are looked up
    # by the upstream's ids: the list had been a 503 that blamed the gateway's database.
    apps = await _start_apps(start_gateway, tmp_path, env={"DATABASE_URL": postgres_url})
    async with apps.sdk("a") as a, apps.sdk("master") as master:
        mine = await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
        odd = dict(fake.files.batches[unbind(mine.id).upstream_id], id="batch_\x00odd")
        fake.files.batches[odd["id"]] = odd
        assert [x.id for x in (await a.batches.list()).data] == [mine.id]
        assert len((await master.batches.list()).data) == 2


@pytest.mark.postgres
async def test_a_file_the_upstream_names_with_a_nul_is_a_502_to_the_key_that_uploaded_it(
    start_gateway: StartGateway, tmp_path: Path, postgres_url: str  # noqa: F811
):
    # Its owner could not be recorded: a 503 had blamed the gateway's database.
    made = json.dumps({"id": "file-\x00odd", "object": "file", "bytes": len(LINES),
                       "created_at": int(time.time()), "filename": "input.jsonl",
                       "purpose": "batch", "status": "processed"}).encode()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(reply(made))
            await writer.drain()

    keys, secrets = _keys_file(tmp_path)
    async with serving(upstream) as server:
        gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{server.origin.port}",
                                      gateway={"auth": {"keys_file": keys}},
                                      env={"DATABASE_URL": postgres_url})
        async with Apps(gateway, secrets).sdk("a") as a:
            with pytest.raises(openai.APIStatusError) as raised:
                await _upload(a)
    assert raised.value.status_code == 502
    assert "cannot keep" in raised.value.message


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _a_s_batch_and_list(
    start_gateway: StartGateway, tmp_path: Path, upstream: Handler
) -> tuple[Any, Any]:
    """Key a's batch, made through a gateway in front of `upstream`, and its list."""
    keys, secrets = _keys_file(tmp_path)
    async with serving(upstream) as server:
        gateway = await start_gateway(upstream_url=f"http://127.0.0.1:{server.origin.port}",
                                      gateway={"auth": {"keys_file": keys}})
        async with Apps(gateway, secrets).sdk("a") as a:
            mine = await a.batches.create(input_file_id=await _upload(a), **BATCH)  # type: ignore[arg-type]
            return mine, await a.batches.list()


async def test_a_keys_list_shows_each_object_once_from_an_upstream_that_repeats_its_page(
    start_gateway: StartGateway, tmp_path: Path
):
    # The upstream answers every page alike, whatever `after` says: each was added to the
    # key's page, which showed its one batch twenty times, and said it had more.
    now = int(time.time())
    batch = {"id": "batch_1", "object": "batch", "status": "validating", "created_at": now,
             "input_file_id": "file-in", "endpoint": "/v1/chat/completions"}
    other = dict(batch, id="batch_2")  # another key's, or one made upstream
    answers = {
        b"/v1/files": {"id": "file-in", "object": "file", "bytes": len(LINES), "created_at": now,
                       "filename": "input.jsonl", "purpose": "batch", "status": "processed"},
        b"/v1/batches": batch,
        b"/v1/batches?": {"object": "list", "data": [batch, other], "first_id": "batch_1",
                          "last_id": "batch_2", "has_more": True},
    }

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            path = (await read_request(reader)).split(b" ", 2)[1]
            listed = path.startswith(b"/v1/batches?")
            writer.write(reply(json.dumps(answers[b"/v1/batches?" if listed else path]).encode()
                               if listed or path in answers else b'{"object":"list","data":[]}'))
            await writer.drain()

    mine, page = await _a_s_batch_and_list(start_gateway, tmp_path, upstream)
    assert [x.id for x in page.data] == [mine.id]
    assert page.has_more is False


async def test_a_keys_list_reads_on_past_an_object_the_upstream_dates_at_no_time(
    start_gateway: StartGateway, tmp_path: Path
):
    # A created_at of 0 (a proxy's for a time it does not know) read as a time before the
    # key's first object: the list ended there, the key's own batch on the next page
    # never shown.
    now = int(time.time())
    batch = {"id": "batch_1", "object": "batch", "status": "validating", "created_at": now,
             "input_file_id": "file-in", "endpoint": "/v1/chat/completions"}
    undated = dict(batch, id="batch_0", created_at=0)
    answers = {
        b"/v1/files": {"id": "file-in", "object": "file", "bytes": len(LINES), "created_at": now,
                       "filename": "input.jsonl", "purpose": "batch", "status": "processed"},
        b"/v1/batches": batch,
        b"/v1/batches?limit=100": {"object": "list", "data": [undated], "has_more": True},
        b"/v1/batches?limit=100&after=batch_0": {"object": "list", "data": [batch],
                                                 "has_more": False},
    }

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            path = (await read_request(reader)).split(b" ", 2)[1]
            said = answers.get(path, {"object": "list", "data": []})
            writer.write(reply(json.dumps(said).encode()))
            await writer.drain()

    mine, page = await _a_s_batch_and_list(start_gateway, tmp_path, upstream)
    assert [x.id for x in page.data] == [mine.id]
