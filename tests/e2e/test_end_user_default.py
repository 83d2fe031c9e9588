"""`auth.per_user`, through the real gateway: the limits each end user of a key gets
where the key gives them none of its own, for the keys file's keys and for those
`hxgw keys` makes; MASTER_KEY, the operator's, is not held to them."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import StartGateway
from tests.e2e.test_keys_cli import keys
from tests.fixtures import Gateway, new_key, wait_for


def _chat(user: str) -> dict[str, Any]:
    return {"model": "chat", "user": user, "messages": [{"role": "user", "content": "hi"}]}


async def _statuses(
    client: aiohttp.ClientSession, gateway: Gateway, secret: str, user: str, times: int
) -> list[int]:
    statuses = []
    for _ in range(times):
        async with client.post(gateway.url + "/v1/chat/completions", json=_chat(user),
                               headers={"Authorization": f"Bearer {secret}"}) as resp:
            await resp.read()
            statuses.append(resp.status)
    return statuses


async def _with_default(
    start_gateway: StartGateway, tmp_path: Path, per_user: dict[str, Any]
) -> tuple[Gateway, dict[str, str]]:
    """A gateway whose keys file has `plain` (nothing for its end users) and `own` (three
    requests a minute for each), and whose `auth.per_user` is `per_user`."""
    secrets = {"plain": new_key("sk-plain"), "own": new_key("sk-own")}
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"keys": [
        {"name": "plain", "key": secrets["plain"]},
        {"name": "own", "key": secrets["own"], "per_user": {"rpm": 3}},
    ]}))
    keys_file.chmod(0o600)
    auth = {"keys_file": str(keys_file), "per_user": per_user}
    return await start_gateway(gateway={"auth": auth}), secrets


async def test_a_file_key_that_gives_its_end_users_nothing_holds_them_to_the_default(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, secrets = await _with_default(start_gateway, tmp_path, {"rpm": 2})
    assert await _statuses(client, gateway, secrets["plain"], "alice", 3) == [200, 200, 429]
    assert await _statuses(client, gateway, secrets["plain"], "bob", 1) == [200]


async def test_a_key_s_own_per_user_limits_win_over_the_default(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, secrets = await _with_default(start_gateway, tmp_path, {"rpm": 2})
    assert await _statuses(client, gateway, secrets["own"], "alice", 4) == [200, 200, 200, 429]


async def test_master_key_s_end_users_are_not_held_to_the_default(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, _ = await _with_default(start_gateway, tmp_path, {"rpm": 2})
    assert await _statuses(client, gateway, gateway.key, "alice", 3) == [200] * 3


async def test_a_stored_key_s_end_users_are_held_to_the_default(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, _ = await _with_default(start_gateway, tmp_path, {"rpm": 2})
    secret = keys(gateway, "create", "app").stdout.strip()
    assert await _statuses(client, gateway, secret, "alice", 3) == [200, 200, 429]


async def test_a_reload_that_changes_the_default_reaches_the_stored_keys_within_a_second(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, _ = await _with_default(start_gateway, tmp_path, {"rpm": 1})
    secret = keys(gateway, "create", "app").stdout.strip()
    assert await _statuses(client, gateway, secret, "alice", 2) == [200, 429]
    config = gateway.config_dir / "gateway.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["auth"]["per_user"] = {"rpm": 10}
    config.write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=2" in gateway.logs())
    for _ in range(12):  # the store is read again within a second of the reload
        if await _statuses(client, gateway, secret, "alice", 1) == [200]:
            break
        await asyncio.sleep(0.25)
    else:
        raise AssertionError("the stored key's end user is still held to the old default")
