"""Under a Python that links a SQLite older than the store needs (3.25), the gateway
serves without its ledger and stored keys and says why at start, and `hxgw keys` says
why it cannot keep a key, where each had failed on its first statement instead.

The old library is the one thing faked: a `sitecustomize` on PYTHONPATH makes the
`sqlite3` module report 3.24.0 to the real `hxgw` processes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartGateway
from tests.fixtures import HXGW, write_config


@pytest.fixture
def old_sqlite(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "old-sqlite"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sqlite3\n"
        "sqlite3.sqlite_version_info = (3, 24, 0)\n"
        "sqlite3.sqlite_version = '3.24.0'\n"
    )
    return {"PYTHONPATH": str(site)}


async def test_the_gateway_serves_without_its_ledger_and_says_which_sqlite_it_needs(
    start_gateway: StartGateway, client: aiohttp.ClientSession, old_sqlite: dict[str, str]
):
    gateway = await start_gateway(env=old_sqlite)
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    async with client.post(gateway.url + "/v1/chat/completions", json=chat,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        assert (await resp.json())["usage"] == {"ledger": "off"}
    (said,) = [line for line in gateway.logs().splitlines() if "ledger, stored keys" in line]
    assert "3.24.0" in said and "3.25 or newer" in said and "DATABASE_URL" in said


def test_hxgw_keys_says_which_sqlite_it_needs(tmp_path: Path, old_sqlite: dict[str, str]):
    config_dir = write_config(tmp_path / "config", "http://127.0.0.1:9")
    env = {**os.environ, **old_sqlite, "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", "create", "app", "--config-dir", str(config_dir)],
                          env=env, capture_output=True, text=True)
    assert made.returncode == 1 and "sk-hx-" not in made.stdout
    assert "is 3.24.0, and the store needs 3.25 or newer" in made.stderr
    assert "is it the gateway's?" not in made.stderr  # the directory is not what is wrong
