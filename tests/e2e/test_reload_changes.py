"""What a reload tells the operator who sent it: what changed, in the log, in STATUS=
and in /status."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import yaml

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, NotifySocket, wait_for


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


async def test_a_reload_says_which_settings_wait_for_a_restart_until_they_are_put_back(
    start_gateway: StartGateway, notify: NotifySocket
):
    gateway = await start_gateway(env={"NOTIFY_SOCKET": notify.path})
    path = gateway.config_dir / "gateway.yaml"
    started = path.read_text()
    doc = yaml.safe_load(started)
    doc["logging"] = {"level": "debug"}
    path.write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=2" in gateway.logs())
    assert "restart_needed=logging" in _reloaded_line(gateway, 2)
    said = "waiting for a restart: logging"
    await wait_for(lambda: any(said in m.get("STATUS", "") for m in notify.drain()))
    path.write_text(started)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=3" in gateway.logs())
    assert "restart_needed" not in _reloaded_line(gateway, 3)


async def test_a_reload_that_asks_one_process_for_workers_says_it_waits_for_a_restart(
    start_gateway: StartGateway, notify: NotifySocket
):
    # It had said only settings_changed=workers, and started none.
    gateway = await start_gateway(env={"NOTIFY_SOCKET": notify.path})
    path = gateway.config_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"workers": 4}))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=2" in gateway.logs())
    assert "workers changed; it takes effect on restart" in gateway.logs()
    assert "restart_needed=workers" in _reloaded_line(gateway, 2)


async def test_a_reload_that_moves_a_port_the_command_line_pins_says_the_command_line_wins(
    start_gateway: StartGateway,
):
    # Every test gateway runs with --port, as `make run` does: it had said changed=none.
    gateway = await start_gateway()
    path = gateway.config_dir / "gateway.yaml"
    moved = {"listen": {"host": "127.0.0.1", "port": 4999}}
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | moved))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=2" in gateway.logs())
    line = next(x for x in gateway.logs().splitlines() if "command line's address wins" in x)
    assert "configured=127.0.0.1:4999" in line
    assert "pinned_by=--host,--port" in line


def _reloaded_line(gateway: Gateway, generation: int) -> str:
    said = f"config reloaded generation={generation}"
    return next(x for x in gateway.logs().splitlines() if said in x)


async def _reload_twice_with_a_keys_file(gateway: Gateway, key: str, mode: int) -> Path:
    """Add a keys file of one key, `app`, to the running gateway's config, then reload
    twice (what is warned of must be said once); the keys file's path."""
    keys = gateway.config_dir / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": key}]}))
    keys.chmod(mode)
    doc = yaml.safe_load((gateway.config_dir / "gateway.yaml").read_text())
    doc["auth"] = {"keys_file": "keys.yaml"}
    (gateway.config_dir / "gateway.yaml").write_text(yaml.safe_dump(doc))
    for generation in (2, 3):
        gateway.signal(signal.SIGHUP)
        said = f"config reloaded generation={generation}"
        await wait_for(lambda said=said: said in gateway.logs())
    return keys


async def test_a_keys_file_every_user_can_read_added_by_a_reload_is_warned_of_once(
    start_gateway: StartGateway,
):
    gateway = await start_gateway()
    keys = await _reload_twice_with_a_keys_file(gateway, "sk-app-123456789", 0o644)
    warnings = [x for x in gateway.logs().splitlines() if "readable by every user" in x]
    assert len(warnings) == 1
    assert f"fix=\"chmod o-rwx {keys}\"" in warnings[0]


async def test_a_short_key_a_reload_adds_is_warned_of_once(start_gateway: StartGateway):
    gateway = await start_gateway()
    await _reload_twice_with_a_keys_file(gateway, "sk-app-1", 0o640)
    warnings = [x for x in gateway.logs().splitlines() if "can be guessed" in x]
    assert len(warnings) == 1 and "can be guessed: app;" in warnings[0]


async def test_a_model_a_reload_points_elsewhere_starts_with_a_closed_circuit(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "circuit_breaker": {"failures": 1, "cooldown": 300},
                           "groups": {"chat": ["alpha", "beta"]}}}
    gateway = await start_gateway(routing=routing)
    fake.behave("m-alpha", status=503)  # the model id the upstream no longer serves
    assert await _served_by(gateway, client) == "beta"  # alpha's circuit opens
    models = [dict(m, upstream_model="m-alpha-2") if m["name"] == "alpha" else m
              for m in DEFAULT_MODELS]
    (gateway.config_dir / "model_registry.yaml").write_text(yaml.safe_dump({"models": models}))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    assert await _served_by(gateway, client) == "alpha"
    assert "m-alpha-2" in fake.seen_models()


async def _served_by(gateway: Gateway, client: aiohttp.ClientSession) -> str:
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 200
        await resp.read()
        return resp.headers["X-HX-Model"]


async def test_a_reload_after_gateway_yaml_vanished_is_refused_and_the_upstream_kept(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    (gateway.config_dir / "gateway.yaml").unlink()
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reload rejected" in gateway.logs())
    assert "gateway.yaml: file not found in" in gateway.logs()
    assert "put it back (an empty gateway.yaml serves every default)" in gateway.logs()
    assert await _served_by(gateway, client) == "alpha"
