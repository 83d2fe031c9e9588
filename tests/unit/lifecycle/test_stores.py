"""The stores as a serving gateway opens them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hxgw.errors import ConfigError
from hxgw.lifecycle.stores import load_serving
from tests.fixtures import write_config


def test_no_client_key_with_a_key_store_it_cannot_read_says_that_store_may_hold_some(
    tmp_path: Path,
):
    # "Make one with hxgw keys" misleads an operator whose keys are there, unread.
    write_config(tmp_path / "conf", "http://127.0.0.1:1")
    (tmp_path / "state" / "hxgw.db").mkdir(parents=True)  # not a database
    with pytest.raises(ConfigError, match=r"no client key: .* \(the key store cannot be read: "):
        load_serving(str(tmp_path / "conf"), {"HX_STATE_DIR": str(tmp_path / "state")})
