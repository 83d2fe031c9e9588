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


async def test_a_keys_file_every_user_can_read_added_by_a_reload_is_warned_of_once(
    start_gateway: StartGateway,
):
    gateway = await start_gateway()
    keys = gateway.config_dir / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": "sk-app-123456789"}]}))
    keys.chmod(0o644)
    doc = yaml.safe_load((gateway.config_dir / "gateway.yaml").read_text())
    doc["auth"] = {"keys_file": "keys.yaml"}
    (gateway.config_dir / "gateway.yaml").write_text(yaml.safe_dump(doc))
    for generation in (2, 3):
        gateway.signal(signal.SIGHUP)
        said = f"config reloaded generation={generation}"
        await wait_for(lambda said=said: said in gateway.logs())
    warnings = [x for x in gateway.logs().splitlines() if "readable by every user" in x]
    assert len(warnings) == 1
    assert f"fix=\"chmod o-rwx {keys}\"" in warnings[0]
