"""gateway.yaml's `store` section and DATABASE_URL / HX_STATE_DIR: where hxgw keeps its
state, and how the usage ledger writes to it.

`load_store_settings` reads only this from a config directory, for `hxgw usage`, which
must find the gateway's store without needing the rest of the config to be valid.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hxgw.config.reader import Problems, Section
from hxgw.config.schema import StoreSettings
from hxgw.config.yaml_file import read_yaml
from hxgw.errors import ConfigError
from hxgw.store.locate import is_postgres_url
from hxgw.store.postgres_url import postgres_url_parts

GATEWAY = "gateway.yaml"
_KEYS = frozenset({"state_dir", "batch_interval", "batch_rows", "spool_max_bytes", "ledger"})


def read_store(top: Section, env: Mapping[str, str]) -> StoreSettings:
    section = top.section("store", _KEYS)
    base = StoreSettings()
    state_dir = Path(section.string("state_dir", str(base.state_dir)))
    if not state_dir.is_absolute():
        section.report(f"must be an absolute path, got {str(state_dir)!r}", "state_dir")
        state_dir = base.state_dir
    if env.get("HX_STATE_DIR"):
        state_dir = Path(env["HX_STATE_DIR"])
        if not state_dir.is_absolute():
            top.problems.add("environment", "HX_STATE_DIR", "must be an absolute path")
    url = env.get("DATABASE_URL") or None
    # Never the value itself in a problem: it carries the database password.
    if url and not is_postgres_url(url):
        top.problems.add(
            "environment", "DATABASE_URL", "must start with postgresql:// or postgres://"
        )
    elif url and postgres_url_parts(url) is None:
        top.problems.add(
            "environment",
            "DATABASE_URL",
            "cannot be read as a PostgreSQL URL (reserved characters in the password,"
            " such as @ or /, must be percent-encoded; the port must be a number)",
        )
    return StoreSettings(
        state_dir=state_dir,
        database_url=url,
        batch_interval=float(
            section.number("batch_interval", base.batch_interval, positive=True, maximum=60)
        ),
        batch_rows=section.number("batch_rows", base.batch_rows, positive=True, integer=True),
        spool_max_bytes=section.number(
            "spool_max_bytes", base.spool_max_bytes, positive=True, integer=True
        ),
        ledger=section.boolean("ledger", base.ledger),
    )


def load_store_settings(
    config_dir: str | os.PathLike[str], env: Mapping[str, str]
) -> StoreSettings:
    """The store settings of `config_dir` (its gateway.yaml is optional), as the gateway
    reads them; raise ConfigError when they are wrong."""
    problems = Problems()
    doc = read_yaml(Path(config_dir) / GATEWAY, problems, [], required=False)
    settings = read_store(Section(GATEWAY, "", doc, problems), env)
    if problems.messages:
        raise ConfigError("\n".join(problems.messages))
    return settings
