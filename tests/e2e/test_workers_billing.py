"""Usage billed apart from any request, with `--workers 2`: an ended batch that each
worker reads is in its key's metrics once, summed over the workers as the ledger holds it."""

from __future__ import annotations

import asyncio
import re

import openai
import pytest

from tests.conftest import StartGateway
from tests.e2e.test_alert_metrics import _sample, _scrape_fresh
from tests.e2e.test_files_and_batches import ALPHA_LINES, PRICED, _batch_of_the_file, _sdk
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, ledger_rows, wait_for

pytestmark = pytest.mark.workers


async def _read_on_both_workers(gateway: Gateway, batch_id: str) -> None:
    """Read the batch on fresh connections until each worker has read it ended."""
    for _ in range(60):
        async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                      max_retries=0) as fresh:
            assert (await fresh.batches.retrieve(batch_id)).status == "completed"
        readers = re.findall(r"GET /v1/batches/\S+ status=200 .* worker=(\d)", gateway.logs())
        if set(readers) == {"0", "1"}:
            return
    raise AssertionError("one worker read every retrieve")


async def _prompt_tokens(gateway: Gateway) -> float | None:
    text = await _scrape_fresh(gateway, "/metrics")  # either worker may answer
    return _sample(text, "hxgw_key_tokens_total", key="master", kind="prompt")


async def test_a_batch_both_workers_read_ended_is_in_its_key_s_metrics_once(
    start_gateway: StartGateway, fake: FakeUpstream
):
    # Each worker queued the row it read and billed the metrics for it: twice the batch.
    gateway = await start_gateway(models=PRICED, gateway={"workers": 2})
    fake.files.add_file(ALPHA_LINES)
    async with _sdk(gateway) as sdk:
        batch = await _batch_of_the_file(sdk)
    await _read_on_both_workers(gateway, batch.id)
    await wait_for(lambda: any(r["request_id"] == "usage-of-" + batch.id
                               for r in ledger_rows(gateway)), timeout=10)
    scrapes = []
    for _ in range(40):  # 4 s: both workers' writes and shared figures, a few times over
        scrapes.append(await _prompt_tokens(gateway))
        await asyncio.sleep(0.1)
    assert scrapes[-10:] == [27] * 10, scrapes  # 3 lines of 9 prompt tokens, once
