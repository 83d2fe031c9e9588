"""Files and batches through the gateway with the official python SDK: they name no
model, so they go to an upstream, and their ids stay bound to the upstream that
holds them."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from hxgw.upstream.affinity import bind, unbind
from tests import one_gateway
from tests.conftest import StartGateway
from tests.e2e.test_alert_metrics import _sample, _scrape
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, ledger_rows, new_key, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
LINES = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n' * 3


def _sdk(gateway: Gateway, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0,
                              default_headers=headers)


async def test_an_uploaded_file_gets_an_id_bound_to_its_upstream_and_its_bytes_arrive_whole(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        made = await sdk.files.create(file=("input.jsonl", LINES), purpose="batch")
    [held] = fake.files.files.values()
    assert unbind(made.id) == ("upstream", "default", held["id"])
    assert (made.filename, made.purpose, made.bytes) == ("input.jsonl", "batch", len(LINES))
    assert fake.files.contents[held["id"]] == LINES


async def test_an_uploaded_file_feeds_a_batch_through_the_sdk(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        made = await sdk.files.create(file=("input.jsonl", LINES), purpose="batch")
        batch = await sdk.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")
        done = await sdk.batches.retrieve(batch.id)
    assert done.status == "completed" and done.input_file_id == made.id


async def test_a_file_over_the_files_limit_gets_413_that_says_the_limit(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"limits": {"max_file_bytes": 1000}})
    async with _sdk(gateway) as sdk:
        with pytest.raises(openai.APIStatusError) as raised:
            await sdk.files.create(file=("big.jsonl", LINES * 20), purpose="batch")
    assert raised.value.status_code == 413
    assert "1000" in raised.value.message
    assert fake.files.files == {}


@pytest.mark.parametrize(("field", "value"), [
    # LiteLLM reads a form's fields as a JSON body's: an api_base would have it send the
    # files account's key to the client's server.
    ("api_base", "http://127.0.0.1:9"),
    # These put the file in another provider's or deployment's account.
    ("custom_llm_provider", "azure"),
    ("target_model_names", "gpt-4o-other-account"),
])
async def test_a_file_upload_with_a_field_that_would_steer_litellm_is_a_400(
    gateway: Gateway, fake: FakeUpstream, field: str, value: str
):
    async with _sdk(gateway) as sdk:
        with pytest.raises(openai.BadRequestError) as raised:
            await sdk.files.create(file=("input.jsonl", LINES), purpose="batch",
                                   extra_body={field: value})
    assert f"'{field}' steers LiteLLM" in raised.value.message
    assert fake.files.files == {}


@pytest.mark.parametrize(("method", "path", "field"), [
    # LiteLLM's file routes read the provider, and the deployments, from the query first.
    ("POST", "/v1/files?custom_llm_provider=azure", "custom_llm_provider"),
    ("GET", "/v1/files?target_model_names=gpt-4o-other-account", "target_model_names"),
    ("GET", "/v1/files/{file}/content?custom_llm_provider=azure", "custom_llm_provider"),
    ("DELETE", "/v1/files/{file}?api_base=http://127.0.0.1:9", "api_base"),
    ("GET", "/v1/batches?limit=2&custom_llm_provider=vertex_ai", "custom_llm_provider"),
])
async def test_a_query_that_would_steer_litellm_is_a_400_and_goes_nowhere(
    gateway: Gateway, fake: FakeUpstream, client: aiohttp.ClientSession,
    method: str, path: str, field: str,
):
    fake.files.add_file(LINES)
    async with _sdk(gateway) as sdk:
        [listed] = (await sdk.files.list()).data
    headers = gateway.auth
    data = None
    if method == "POST":
        data = (b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
                b"\r\n" + LINES + b"\r\n--b--\r\n")
        headers = {**headers, "Content-Type": "multipart/form-data; boundary=b"}
    async with client.request(method, gateway.url + path.format(file=listed.id), data=data,
                              headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["param"] == field
    assert len(fake.files.files) == 1  # none added, none deleted


async def test_a_steering_field_after_a_large_file_stops_its_upload_with_a_400(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    big = LINES * 40_000  # 10 MiB: it streams upstream before the field arrives
    body = (b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
            + big + b'\r\n--b\r\nContent-Disposition: form-data; name="api_base"\r\n\r\n'
            b"http://127.0.0.1:9\r\n--b--\r\n")
    headers = {**gateway.auth, "Content-Type": "multipart/form-data; boundary=b"}
    async with client.post(gateway.url + "/v1/files", data=io.BytesIO(body),
                           headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["param"] == "api_base"
    assert fake.files.files == {}


async def test_a_file_name_as_node_s_form_data_writes_it_is_uploaded(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Its quotes left as they are: off RFC 6266's grammar, but nothing in it names a field.
    body = (b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; '
            b'filename="my "best" batch.jsonl"\r\n\r\n' + LINES + b"\r\n--b--\r\n")
    headers = {**gateway.auth, "Content-Type": "multipart/form-data; boundary=b"}
    async with client.post(gateway.url + "/v1/files", data=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    [held] = fake.files.files.values()
    assert fake.files.contents[held["id"]] == LINES


async def test_a_file_upload_that_is_not_a_form_gets_400(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.post(gateway.url + "/v1/files", json={"file": "x"},
                           headers=gateway.auth) as resp:
        assert resp.status == 400
        assert "multipart/form-data" in (await resp.json())["error"]["message"]


async def test_files_are_listed_with_ids_bound_to_their_upstream(
    gateway: Gateway, fake: FakeUpstream
):
    held = fake.files.add_file(LINES)
    async with _sdk(gateway) as sdk:
        page = await sdk.files.list()
    assert [f.filename for f in page.data] == ["input.jsonl"]
    assert unbind(page.data[0].id) == ("upstream", "default", held["id"])


async def test_a_file_is_read_and_deleted_through_its_bound_id(
    gateway: Gateway, fake: FakeUpstream
):
    fake.files.add_file(LINES)
    async with _sdk(gateway) as sdk:
        [listed] = (await sdk.files.list()).data
        read = await sdk.files.retrieve(listed.id)
        content = await sdk.files.content(listed.id)
        deleted = await sdk.files.delete(listed.id)
    assert (read.id, read.bytes) == (listed.id, len(LINES))
    assert content.content == LINES
    assert (deleted.id, deleted.deleted) == (listed.id, True)
    assert fake.files.files == {}


async def _batch_of_the_file(sdk: openai.AsyncOpenAI) -> Any:
    """A batch of the one file the upstream holds, as listed through the gateway."""
    [listed] = (await sdk.files.list()).data
    return await sdk.batches.create(input_file_id=listed.id, endpoint="/v1/chat/completions",
                                    completion_window="24h")


async def _run_batch(gateway: Gateway, fake: FakeUpstream) -> tuple[str, Any, Any, bytes]:
    """A batch of the file the upstream holds, read back once done: the file's id, the
    batch as made and as read, and its output file's content."""
    fake.files.add_file(LINES)
    async with _sdk(gateway) as sdk:
        [listed] = (await sdk.files.list()).data
        batch = await sdk.batches.create(input_file_id=listed.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")
        done = await sdk.batches.retrieve(batch.id)
        assert done.output_file_id is not None
        output = await sdk.files.content(done.output_file_id)
    return listed.id, batch, done, output.content


async def test_a_batch_runs_on_its_files_upstream_and_its_output_file_can_be_read(
    gateway: Gateway, fake: FakeUpstream
):
    listed_id, batch, done, output = await _run_batch(gateway, fake)
    assert batch.input_file_id == listed_id
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.completed == 3
    assert output.count(b"\n") == 3


async def test_reading_a_batch_and_its_output_bills_none_of_the_usage_they_hold(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway  # it counts the ledger's rows
    *_, output = await _run_batch(gateway, fake)
    assert b'"usage": {"prompt_tokens": 9' in output
    await wait_for(lambda: len(ledger_rows(gateway)) == 5, timeout=10)  # the batch's own too
    billed = {r["route"]: (r["prompt_tokens"], r["completion_tokens"], r["usage_source"])
              for r in ledger_rows(gateway)}
    assert billed["batches_retrieve"] == billed["files_content"] == (0, 0, "none")


PRICED = [{**DEFAULT_MODELS[0], "price": {"input_per_mtok": 2.0, "output_per_mtok": 8.0,
                                          "batch_factor": 0.5}}, *DEFAULT_MODELS[1:]]
"""alpha (upstream m-alpha) priced, its batches at half its price."""
ALPHA_LINES = LINES.replace(b'"body": {}', b'"body": {"model": "m-alpha-2024-07-18"}')


async def test_an_ended_batch_is_billed_once_on_its_own_row_at_its_models_batch_price(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(models=PRICED)
    fake.files.add_file(ALPHA_LINES)
    async with _sdk(gateway) as sdk:
        batch = await _batch_of_the_file(sdk)
        done = await sdk.batches.retrieve(batch.id)  # it ends as it is first read
        await sdk.batches.retrieve(batch.id)
        await sdk.batches.list()
    await wait_for(lambda: len(ledger_rows(gateway)) == 6, timeout=10)
    [row] = [r for r in ledger_rows(gateway) if r["request_id"].startswith("usage-of-")]
    assert row["request_id"] == "usage-of-" + batch.id
    assert (row["key_name"], row["route"], row["model"], row["usage_source"]) == (
        "master", "batches", "alpha", "reported")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (27, 6)  # 3 lines of 9 and 2
    assert row["cost"] == pytest.approx((27 * 2.0 + 6 * 8.0) / 1e6 * 0.5)
    assert (row["started"], row["ended"]) == (done.created_at, done.completed_at)


async def test_a_batch_is_billed_to_the_key_that_made_it_whoever_reads_it_ended(
    start_gateway: StartGateway, fake: FakeUpstream, tmp_path: Path
):
    secret = new_key("sk-app")
    gateway = await start_gateway(models=PRICED,
                                  gateway={"auth": {"keys_file": _keys_file(tmp_path, secret)}})
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret,
                                  max_retries=0) as app:
        made = await app.files.create(file=("input.jsonl", ALPHA_LINES), purpose="batch")
        batch = await app.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")
    async with _sdk(gateway) as sdk:
        assert (await sdk.batches.retrieve(batch.id)).status == "completed"  # the operator's read
    await wait_for(lambda: any(r["request_id"] == "usage-of-" + batch.id
                               for r in ledger_rows(gateway)), timeout=10)
    [row] = [r for r in ledger_rows(gateway) if r["request_id"] == "usage-of-" + batch.id]
    assert (row["key_name"], row["total_tokens"]) == ("app", 33)


async def test_a_batch_s_row_names_the_team_of_the_key_that_made_it(
    start_gateway: StartGateway, fake: FakeUpstream, tmp_path: Path
):
    # `hxgw usage --by team` and a team's spend read the rows' team: a batch's had none.
    secret = new_key("sk-app")
    gateway = await start_gateway(
        models=PRICED,
        gateway={"auth": {"keys_file": _keys_file(tmp_path, secret, team="search")}})
    batch_id = await ended_batch_of(gateway, secret)
    await wait_for(lambda: any(r["request_id"] == "usage-of-" + batch_id
                               for r in ledger_rows(gateway)), timeout=10)
    [row] = [r for r in ledger_rows(gateway) if r["request_id"] == "usage-of-" + batch_id]
    assert (row["key_name"], row["team"], row["total_tokens"]) == ("app", "search", 33)


async def ended_batch_of(gateway: Gateway, secret: str) -> str:
    """The id of a batch of ALPHA_LINES the key `secret` made, read by it once ended."""
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret,
                                  max_retries=0) as app:
        made = await app.files.create(file=("input.jsonl", ALPHA_LINES), purpose="batch")
        batch = await app.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")
        assert (await app.batches.retrieve(batch.id)).status == "completed"
    return batch.id


async def billed_in_metrics(gateway: Gateway, client: aiohttp.ClientSession) -> str:
    """/metrics once they hold usage billed apart: the key's figures grow as the ledger
    writes its row."""
    for _ in range(200):
        text = await _scrape(gateway, client)
        if _sample(text, "hxgw_key_tokens_total", key="master", kind="prompt"):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError("no usage billed apart reached /metrics within 10 s")


async def test_a_batch_s_usage_is_in_its_key_s_metrics_once_however_often_it_is_read(
    start_gateway: StartGateway, fake: FakeUpstream, client: aiohttp.ClientSession
):
    # /metrics had the key's requests alone: a batch's spend was in the ledger only.
    gateway = await start_gateway(models=PRICED)
    fake.files.add_file(ALPHA_LINES)
    async with _sdk(gateway) as sdk:
        batch = await _batch_of_the_file(sdk)
        for _ in range(3):
            await sdk.batches.retrieve(batch.id)
    text = await billed_in_metrics(gateway, client)
    assert _sample(text, "hxgw_key_tokens_total", key="master", kind="prompt") == 27
    assert _sample(text, "hxgw_key_tokens_total", key="master", kind="completion") == 6
    assert _sample(text, "hxgw_key_spend_total", key="master") == pytest.approx(
        (27 * 2.0 + 6 * 8.0) / 1e6 * 0.5)


async def test_a_batch_still_running_or_of_a_model_the_registry_lacks_bills_no_money(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway
    fake.files.add_file(LINES.replace(b'"body": {}', b'"body": {"model": "elsewhere"}'))
    async with _sdk(gateway) as sdk:
        batch = await _batch_of_the_file(sdk)
        await wait_for(lambda: len(ledger_rows(gateway)) == 2, timeout=10)
        assert not any(r["request_id"].startswith("usage-of-") for r in ledger_rows(gateway))
        await sdk.batches.retrieve(batch.id)
    await wait_for(lambda: len(ledger_rows(gateway)) == 4, timeout=10)
    [row] = [r for r in ledger_rows(gateway) if r["request_id"].startswith("usage-of-")]
    assert (row["model"], row["total_tokens"], row["cost"]) == ("elsewhere", 33, 0.0)


async def test_a_batch_of_a_model_the_registry_lacks_is_said_in_the_log_once(
    own_gateway: Gateway, fake: FakeUpstream
):
    gateway = own_gateway
    gateway.begin_test()
    fake.files.add_file(LINES.replace(b'"body": {}', b'"body": {"model": "elsewhere"}'))
    async with _sdk(gateway) as sdk:
        batch = await _batch_of_the_file(sdk)
        for _ in range(3):
            await sdk.batches.retrieve(batch.id)
        await sdk.batches.list()
    said = "a batch's model is not in the registry: its usage costs nothing"
    await wait_for(lambda: said in gateway.logs(), timeout=10)
    [line] = [line for line in gateway.logs().splitlines() if said in line]
    assert "model=elsewhere" in line and batch.id in line


async def test_a_batch_can_be_cancelled_and_batches_listed(gateway: Gateway, fake: FakeUpstream):
    fake.files.add_file(LINES)
    async with _sdk(gateway) as sdk:
        batch = await _batch_of_the_file(sdk)
        cancelled = await sdk.batches.cancel(batch.id)
        page = await sdk.batches.list()
    assert (cancelled.id, cancelled.status) == (batch.id, "cancelling")
    assert [b.id for b in page.data] == [batch.id]


async def test_a_list_pages_after_a_bound_id(gateway: Gateway, fake: FakeUpstream):
    for _ in range(3):
        fake.files.add_file(LINES)
    async with _sdk(gateway) as sdk:
        first = await sdk.files.list(limit=2)
        rest = await sdk.files.list(limit=2, after=first.data[-1].id)
    assert len(first.data) == 2 and len(rest.data) == 1
    assert rest.data[0].id not in {f.id for f in first.data}


async def test_files_listed_by_purpose_are_only_those_of_that_purpose(gateway: Gateway):
    async with _sdk(gateway) as sdk:
        batch = await sdk.files.create(file=("input.jsonl", LINES), purpose="batch")
        await sdk.files.create(file=("notes.txt", b"notes"), purpose="user_data")
        listed = [made.id async for made in sdk.files.list(purpose="batch")]
    assert listed == [batch.id]


async def test_an_id_the_gateway_did_not_make_is_not_found_before_any_upstream(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/v1/files/file-abc", headers=gateway.auth) as resp:
        assert resp.status == 404
        assert "file-abc" in (await resp.json())["error"]["message"]
    body = {"input_file_id": "file-abc", "endpoint": "/v1/chat/completions",
            "completion_window": "24h"}
    async with client.post(gateway.url + "/v1/batches", json=body, headers=gateway.auth) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["param"] == "input_file_id"


async def test_an_id_bound_to_a_path_step_reaches_no_upstream_path(
    gateway: Gateway, client: aiohttp.ClientSession
):
    # Quoted, ".." stayed "..": /v1/files/../content, which an upstream may read as
    # /v1/content. No upstream makes such an id; a client can, bound ids being unsigned.
    made_up = bind("upstream", "default", "..")
    async with client.get(gateway.url + f"/v1/files/{made_up}/content",
                          headers=gateway.auth) as resp:
        assert resp.status == 404
        assert "not made by this gateway" in (await resp.json())["error"]["message"]


async def test_a_batch_whose_input_file_id_is_not_a_string_is_a_400_that_names_it(
    gateway: Gateway, fake: FakeUpstream, client: aiohttp.ClientSession
):
    for given in (["file-abc"], 5, {"id": "file-abc"}):
        body = {"input_file_id": given, "endpoint": "/v1/chat/completions",
                "completion_window": "24h"}
        async with client.post(gateway.url + "/v1/batches", json=body,
                               headers=gateway.auth) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
        assert error["param"] == "input_file_id"
        assert error["message"] == "'input_file_id' must be a string"
    assert fake.requests == []


async def test_files_routes_take_the_key(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.get(gateway.url + "/v1/files") as resp:
        assert resp.status == 401


# Two upstreams, a group on each.
TWO_MODELS = [
    {"name": "left", "tier_score": 0.9, "specializations": [], "upstream_model": "m-left",
     "mode": "chat", "upstream": "one"},
    {"name": "right", "tier_score": 0.9, "specializations": [], "upstream_model": "m-right",
     "mode": "chat", "upstream": "two"},
]
TWO_ROUTING = {"routing": {"strategy": "failover", "default_group": "l",
                           "groups": {"l": ["left"], "r": ["right"]}}}


async def test_files_follow_the_header_groups_upstream_and_batches_their_files(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str],
):
    upstreams = {"one": {"url": upstream[1]}, "two": {"url": second_upstream[1]}}
    gateway = await start_gateway(models=TWO_MODELS, routing=TWO_ROUTING,
                                  gateway={"upstreams": upstreams})
    async with _sdk(gateway, **{"X-HX-Model-Group": "r"}) as on_two:
        await on_two.files.create(file=("input.jsonl", LINES), purpose="batch")
        [listed] = (await on_two.files.list()).data
    async with _sdk(gateway) as sdk:
        assert (await sdk.files.list()).data == []  # the default group's upstream: one
    async with _sdk(gateway) as sdk:  # no header: the file's id says where it is
        batch = await sdk.batches.create(input_file_id=listed.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")
        done = await sdk.batches.retrieve(batch.id)
    assert unbind(batch.id) is not None and unbind(batch.id).target == "two"  # type: ignore[union-attr]
    assert done.status == "completed"
    assert upstream[0].files.batches == {}


def _keys_file(tmp_path: Path, secret: str, groups: list[str] | None = None,
               team: str | None = None) -> str:
    keys = tmp_path / "keys.yaml"
    entry: dict[str, Any] = {"name": "app", "key": secret}
    if groups is not None:
        entry["groups"] = groups
    teams = []
    if team is not None:
        entry["team"] = team
        teams = [{"name": team, "rpm": 1000}]
    keys.write_text(yaml.safe_dump({"teams": teams, "keys": [entry]}))
    keys.chmod(0o600)
    return str(keys)


async def test_a_key_limited_to_groups_reaches_no_file_or_batch_on_another_upstream(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str], tmp_path: Path, client: aiohttp.ClientSession,
):
    upstreams = {"one": {"url": upstream[1]}, "two": {"url": second_upstream[1]}}
    secret = new_key("sk-app")
    gateway = await start_gateway(models=TWO_MODELS, routing=TWO_ROUTING, gateway={
        "upstreams": upstreams, "auth": {"keys_file": _keys_file(tmp_path, secret, ["l"])}})
    held = second_upstream[0].files.add_file(LINES)
    other = bind("upstream", "two", held["id"])  # the id the gateway gave another app
    auth = {"Authorization": f"Bearer {secret}"}
    batch = {"input_file_id": other, "endpoint": "/v1/chat/completions",
             "completion_window": "24h"}
    for method, path, body in [("GET", f"/v1/files/{other}", None),
                               ("GET", f"/v1/files/{other}/content", None),
                               ("DELETE", f"/v1/files/{other}", None),
                               ("GET", f"/v1/files?after={other}", None),
                               ("POST", "/v1/batches", batch)]:
        async with client.request(method, gateway.url + path, json=body, headers=auth) as resp:
            answer = await resp.json()
            assert resp.status == 403, (method, path, answer)
            assert "may not use upstream 'two'" in answer["error"]["message"]
    assert second_upstream[0].files.files  # untouched
    async with client.get(gateway.url + "/v1/files", headers=auth) as resp:
        assert resp.status == 200  # its own group's upstream still answers


@pytest.mark.parametrize("limits", [{"groups": ["chat"]}, {"budget": 5}, {"tpm": 100000},
                                    {"per_user": {"budget": 5}}],
                         ids=["groups", "budget", "tpm", "budget per end user"])
async def test_a_key_with_groups_a_budget_or_tpm_may_not_create_a_batch(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str], tmp_path: Path,
    client: aiohttp.ClientSession, limits: dict[str, object],
):
    # The upstream runs a batch's lines later, each naming its own model: the gateway
    # could neither keep them to the key's groups nor count what they use.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, **limits}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)}})
    auth = {"Authorization": f"Bearer {secret}"}
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret,
                                  max_retries=0) as sdk:
        uploaded = await sdk.files.create(file=("input.jsonl", LINES), purpose="batch")
    batch = {"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions",
             "completion_window": "24h"}
    async with client.post(gateway.url + "/v1/batches", json=batch, headers=auth) as resp:
        assert resp.status == 403
        error = (await resp.json())["error"]
    assert error["code"] == "batch_not_allowed"
    assert upstream[0].files.batches == {}


async def test_a_key_limited_to_groups_lists_files_of_its_first_groups_upstream(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str], tmp_path: Path,
):
    upstreams = {"default": {"url": upstream[1]}, "two": {"url": second_upstream[1]}}
    models = [{**TWO_MODELS[0], "upstream": "default"}, TWO_MODELS[1]]
    secret = new_key("sk-app")
    gateway = await start_gateway(models=models, routing=TWO_ROUTING, gateway={
        "upstreams": upstreams, "auth": {"keys_file": _keys_file(tmp_path, secret, ["r"])}})
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0,
                                  default_headers={"X-HX-Model-Group": "r"}) as sdk:
        await sdk.files.create(file=("input.jsonl", LINES), purpose="batch")
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret,
                                  max_retries=0) as sdk:
        [listed] = (await sdk.files.list()).data  # not the `default` upstream's (empty) list
    assert unbind(listed.id) is not None and unbind(listed.id).target == "two"  # type: ignore[union-attr]


async def test_a_batch_of_a_model_named_past_any_name_s_length_is_billed_under_its_start(
    own_gateway: Gateway, fake: FakeUpstream
):
    # The row, the status page's charts and `hxgw usage --by model` had each held the
    # 100,000 characters the upstream named it by, and the log line said them all.
    gateway = own_gateway
    named = "m" * 100_000
    fake.files.add_file(LINES.replace(b'"body": {}', b'"body": {"model": "%s"}' % named.encode()))
    async with _sdk(gateway) as sdk:
        batch = await _batch_of_the_file(sdk)
        await sdk.batches.retrieve(batch.id)
    await wait_for(lambda: any(r["request_id"] == "usage-of-" + batch.id
                               for r in ledger_rows(gateway)), timeout=10)
    [billed] = [r for r in ledger_rows(gateway) if r["request_id"] == "usage-of-" + batch.id]
    assert billed["model"] == named[:256] and billed["total_tokens"] == 33
    assert named not in gateway.logs()


@pytest.mark.parametrize(("team", "said"), [
    ({"budget": 5}, "a team with a budget"),
    ({"groups": ["chat"]}, "a team with groups"),
])
async def test_a_key_in_a_team_with_a_budget_or_groups_may_not_create_a_batch(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str], tmp_path: Path,
    client: aiohttp.ClientSession, team: dict[str, Any], said: str,
):
    # The batch's lines would be run later by the upstream, each naming its own model:
    # uncounted by the team's budget, kept to no group.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"teams": [{"name": "search", **team}],
                                    "keys": [{"name": "app", "key": secret, "team": "search"}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)}})
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret,
                                  max_retries=0) as sdk:
        uploaded = await sdk.files.create(file=("input.jsonl", LINES), purpose="batch")
    batch = {"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions",
             "completion_window": "24h"}
    async with client.post(gateway.url + "/v1/batches", json=batch,
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        assert resp.status == 403
        error = (await resp.json())["error"]
    assert error["code"] == "batch_not_allowed" and said in error["message"]
    assert upstream[0].files.batches == {}
