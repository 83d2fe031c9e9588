"""Files and batches through the gateway with the node openai SDK: a file uploaded for a
batch, listed, read, downloaded and deleted; a batch made from it, read back complete,
its output downloaded, listed and cancelled. Every id the SDK holds is the gateway's,
bound to the upstream that holds the object (docs/affinity.md), never the upstream's own;
the tests compare them with what the fake upstream holds."""

from __future__ import annotations

import base64

import pytest

from hxgw.upstream.affinity import Bound, unbind
from tests.e2e.test_files_and_batches import LINES
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway
from tests.node.test_node_sdks import run

pytestmark = pytest.mark.node


def on_default(upstream_id: str) -> Bound:
    """What a gateway id of an object on the default upstream decodes to."""
    return Bound("upstream", "default", upstream_id)


async def test_openai_files_create_uploads_the_bytes_whole_under_a_bound_id(
    gateway: Gateway, fake: FakeUpstream
):
    made = await run("openai/files-upload.mjs", gateway)
    [held] = fake.files.files.values()
    assert unbind(made["id"]) == on_default(held["id"]) and made["id"] != held["id"]
    assert (made["filename"], made["purpose"], made["bytes"]) == (
        "input.jsonl", "batch", len(LINES))
    assert fake.files.contents[held["id"]] == LINES


async def test_openai_files_list_pages_through_bound_ids(gateway: Gateway, fake: FakeUpstream):
    for _ in range(3):
        fake.files.add_file(LINES)
    result = await run("openai/files-list.mjs", gateway, HXGW_LIMIT="2")  # 2 pages
    assert [unbind(i) for i in result["ids"]] == [on_default(i) for i in reversed(fake.files.files)]


async def test_openai_files_retrieve_by_the_bound_id(gateway: Gateway, fake: FakeUpstream):
    result = await run("openai/files-retrieve.mjs", gateway)
    read, made = result["read"], result["made"]
    assert (read["id"], read["bytes"], read["filename"]) == (made["id"], len(LINES), "input.jsonl")
    assert read["id"] not in fake.files.files


async def test_openai_files_content_is_the_uploaded_bytes(gateway: Gateway):
    result = await run("openai/files-content.mjs", gateway)
    assert base64.b64decode(result["body"]) == LINES
    assert result["contentType"] == "application/octet-stream"


async def test_openai_files_delete_by_the_bound_id_and_it_is_gone(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/files-delete.mjs", gateway)
    assert result["deleted"] == {"id": result["madeId"], "object": "file", "deleted": True}
    assert result["afterDelete"] == {"notFound": True, "status": 404}
    assert fake.files.files == {}


async def test_openai_batches_create_from_an_uploaded_file(gateway: Gateway, fake: FakeUpstream):
    result = await run("openai/batch-create.mjs", gateway)
    batch = result["batch"]
    [held] = fake.files.batches.values()
    assert unbind(batch["id"]) == on_default(held["id"]) and batch["id"] != held["id"]
    assert batch["input_file_id"] == result["fileId"]
    assert held["input_file_id"] == unbind(result["fileId"]).upstream_id  # type: ignore[union-attr]


async def test_openai_batches_retrieve_a_completed_batch_and_download_its_output(
    gateway: Gateway, fake: FakeUpstream
):
    result = await run("openai/batch-output.mjs", gateway)
    done = result["done"]
    assert (done["id"], done["status"]) == (result["batchId"], "completed")
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    output = unbind(done["output_file_id"])
    assert output is not None and output.target == "default"
    assert result["output"].encode() == fake.files.contents[output.upstream_id]
    assert result["output"].count("\n") == 3


async def test_openai_batches_list_has_the_batches_made(gateway: Gateway, fake: FakeUpstream):
    result = await run("openai/batch-list.mjs", gateway)
    assert sorted(result["listed"]) == sorted(result["made"])
    assert [unbind(i) for i in result["made"]] == [on_default(i) for i in fake.files.batches]


async def test_openai_batches_cancel_by_the_bound_id(gateway: Gateway, fake: FakeUpstream):
    result = await run("openai/batch-cancel.mjs", gateway)
    cancelled = result["cancelled"]
    assert (cancelled["id"], cancelled["status"]) == (result["batchId"], "cancelling")
    [held] = fake.files.batches.values()
    assert held["status"] == "cancelling"
