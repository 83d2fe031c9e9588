"""What a reload tells the operator who sent it: what changed, in the log, in STATUS=
and in /status."""

from __future__ import annotations

import signal

import aiohttp
import yaml

from tests.conftest import StartGateway
from tests.fixtures import DEFAULT_MODELS, NotifySocket, wait_for


async def test_a_reload_says_what_it_changed_in_the_log_status_and_status_page(
    start_gateway: StartGateway, notify: NotifySocket, client: aiohttp.ClientSession
):
    gateway = await start_gateway(env={"NOTIFY_SOCKET": notify.path})
    models = [m for m in DEFAULT_MODELS if m["name"] != "gamma"]
    (gateway.config_dir / "model_registry.yaml").write_text(yaml.safe_dump({"models": models}))
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "groups": {"chat": ["beta", "alpha"], "emb": ["embed"]}}}
    (gateway.config_dir / "routing.yaml").write_text(yaml.safe_dump(routing))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    line = next(x for x in gateway.logs().splitlines() if "config reloaded" in x)
    assert "models_removed=gamma" in line
    assert "groups_removed=solo" in line and "groups_changed=chat" in line
    said = "changed routing.yaml, model_registry.yaml"
    await wait_for(lambda: any(said in m.get("STATUS", "") for m in notify.drain()))
    async with client.get(gateway.url + "/status.json", headers=gateway.auth) as resp:
        assert said in (await resp.json())["last_reload"]["message"]


async def test_a_reload_of_unchanged_files_says_nothing_changed(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await start_gateway(env={"NOTIFY_SOCKET": notify.path})
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    line = next(x for x in gateway.logs().splitlines() if "config reloaded" in x)
    assert "changed=none" in line
    await wait_for(lambda: any("nothing changed" in m.get("STATUS", "") for m in notify.drain()))
