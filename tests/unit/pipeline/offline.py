"""A snapshot for the steps' unit tests: built from a config written to a directory, with
no client session (the steps under test never call an upstream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hxgw.config import load_config
from hxgw.runtime import Runtime
from hxgw.state import GatewayState, build_state
from tests.fixtures import new_key, write_config


def offline_state(
    directory: Path, *, key: str | None = None, runtime: Runtime | None = None, **config: Any
) -> GatewayState:
    """The snapshot of `write_config(directory, ..., **config)`, whose MASTER_KEY is `key`
    (a new one unless given)."""
    write_config(directory, "http://127.0.0.1:1", **config)
    loaded = load_config(directory, {"MASTER_KEY": key or new_key()})
    return build_state(loaded, None, 1, runtime or Runtime())  # type: ignore[arg-type]
