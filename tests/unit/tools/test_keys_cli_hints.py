"""What `hxgw keys` adds to a store's error: where to look, or that it is only busy."""

from __future__ import annotations

from hxgw.store import StoreError
from hxgw.tools.keys_cli import _where_hint


def test_a_locked_store_is_said_to_be_busy_not_perhaps_the_wrong_one():
    # After 10 s of waiting it had asked whether HX_STATE_DIR was the gateway's.
    hint = _where_hint(StoreError("database is locked"), postgres=False)
    assert "holds it for writing" in hint and "HX_STATE_DIR" not in hint


def test_another_sqlite_failure_asks_whether_it_is_the_gateway_s_store():
    assert "is it the gateway's?" in _where_hint(StoreError("disk I/O error"), postgres=False)
