"""A row billed by whichever answer first carries it: in the ledger once, and in its
key's counters, which only grow."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from hxgw.endpoints import RESPONSE
from hxgw.pipeline.billing.once import bill_once
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.exchange import Exchange
from hxgw.runtime import Runtime
from hxgw.store import open_database
from hxgw.usage import Ledger
from tests.unit.pipeline.offline import offline_state
from tests.unit.usage.rows import row


def _ctx(tmp_path: Path) -> RequestContext:
    runtime = Runtime()
    runtime.ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool")
    state = offline_state(tmp_path / "conf", runtime=runtime)
    return RequestContext(Exchange(make_mocked_request("GET", "/v1/responses/x")), state, RESPONSE)


def _key_figures(ctx: RequestContext) -> dict[str, float]:
    return {f"{family.name}{sample.labels.get('kind', '')}": sample.value
            for family in ctx.state.runtime.metrics.keys.families()
            for sample in family.samples if sample.labels.get("key") == "alice"}


def test_a_report_below_its_estimate_leaves_the_key_s_counters_as_they_were(tmp_path: Path):
    # A counter that falls is read by Prometheus as a reset: increase() jumped by all of it.
    ctx = _ctx(tmp_path)
    assert bill_once(ctx, row(1, usage_source="estimated", prompt_tokens=500, cost=0.01).values())
    before = _key_figures(ctx)
    assert bill_once(ctx, row(1, usage_source="reported", prompt_tokens=20, cost=0.002).values())
    assert _key_figures(ctx) == before
    assert ctx.state.runtime.ledger is not None and ctx.state.runtime.ledger.pending == 2


def test_a_row_billed_again_adds_nothing(tmp_path: Path):
    ctx = _ctx(tmp_path)
    assert bill_once(ctx, row(1, prompt_tokens=10, cost=0.25).values())
    assert not bill_once(ctx, row(1, prompt_tokens=10, cost=0.25).values())
    assert _key_figures(ctx)["hxgw_key_spend"] == 0.25
