"""An ended batch's ledger row, as the upstream's batch object says it."""

from __future__ import annotations

from hxgw.pipeline.billing.batch_usage import batch_row
from hxgw.usage import COLUMNS

BATCH = {"id": "batch_hx1", "status": "completed", "created_at": 1_750_000_000,
         "completed_at": 1_750_000_600, "usage": {"input_tokens": 7, "output_tokens": 3}}


def test_a_model_the_registry_lacks_is_named_as_its_upstream_named_it():
    values = batch_row({**BATCH, "model": "m-upstream"}, "app", "default", None)
    assert values is not None
    assert dict(zip(COLUMNS, values, strict=True))["model"] == "m-upstream"


def test_a_nul_in_an_upstream_s_model_name_is_written_as_a_replacement_character():
    # PostgreSQL refuses a text with a NUL in it: the batch's row would have been lost.
    values = batch_row({**BATCH, "model": "m\x00x"}, "app", "default", None)
    assert values is not None
    assert dict(zip(COLUMNS, values, strict=True))["model"] == "m\ufffdx"


def test_the_row_names_the_team_it_is_given_and_none_without_one():
    teamed = batch_row(BATCH, "app", "default", None, "search")
    alone = batch_row(BATCH, "app", "default", None)
    assert teamed is not None and alone is not None
    assert dict(zip(COLUMNS, teamed, strict=True))["team"] == "search"
    assert dict(zip(COLUMNS, alone, strict=True))["team"] is None
