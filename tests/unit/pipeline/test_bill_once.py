"""A row billed by whichever answer first carries it: queued in the ledger once."""

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


def _ctx(tmp_path: Path, *, ledger: bool = True) -> RequestContext:
    runtime = Runtime()
    if ledger:
        runtime.ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "spool")
    state = offline_state(tmp_path / "conf", runtime=runtime)
    return RequestContext(Exchange(make_mocked_request("GET", "/v1/responses/x")), state, RESPONSE)


def test_a_row_billed_again_is_not_queued_again(tmp_path: Path):
    ctx = _ctx(tmp_path)
    assert bill_once(ctx, row(1).values())
    assert not bill_once(ctx, row(1).values())
    assert ctx.state.runtime.ledger is not None and ctx.state.runtime.ledger.pending == 1


def test_without_a_ledger_nothing_is_billed(tmp_path: Path):
    assert not bill_once(_ctx(tmp_path, ledger=False), row(1).values())
