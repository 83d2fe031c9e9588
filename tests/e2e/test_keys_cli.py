"""`hxgw keys`, as an operator runs it, against serving gateways: a key made works at
once; limited, rotated or revoked, it takes effect within a second, with no reload, on
every worker and on every instance that shares the store."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from hxgw.store import open_database
from hxgw.units import money
from hxgw.usage import Ledger, UsageRow
from tests.conftest import StartGateway
from tests.e2e.test_cli_usage import as_another_user
from tests.fixtures import (
    DEFAULT_MODELS,
    HXGW,
    Gateway,
    free_port,
    ledger_rows,
    new_key,
    poll,
    wait_for,
    write_config,
)
from tests.postgres import Postgres, own_postgres  # noqa: F401 -- a fixture

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
PRICED = [dict(m, price={"input_per_mtok": 1000, "output_per_mtok": 2000}) for m in DEFAULT_MODELS]


@dataclass
class Unserved:
    """A gateway's config directory and state directory, and no gateway serving on them:
    for what `hxgw keys` does alone."""

    config_dir: Path

    def env(self) -> dict[str, str]:
        return {"HX_STATE_DIR": str(self.config_dir.parent / "state")}


def _unserved(tmp_path: Path, **config: Any) -> Unserved:
    """The directories of a gateway that `config` would set up (see write_config)."""
    return Unserved(write_config(tmp_path / "config", "http://127.0.0.1:9", **config))


def keys(gateway: Gateway | Unserved, *args: str) -> subprocess.CompletedProcess[str]:
    """`hxgw keys ...` with the gateway's own store settings, as its operator would."""
    env = {**os.environ, **{k: v for k, v in gateway.env().items()
                            if k in ("HX_STATE_DIR", "DATABASE_URL")}}
    return subprocess.run([HXGW, "keys", *args, "--config-dir", str(gateway.config_dir)],
                          env=env, capture_output=True, text=True, timeout=30)


async def _status(client: aiohttp.ClientSession, gateway: Gateway, secret: str) -> int:
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        await resp.read()
        return resp.status


async def _within_a_second(check: Any) -> None:
    """`check()` holds within a second (a little more: the machine is shared). Asked
    four times a second: each refusal is a bad key to the gateway's guard, and twenty
    in a minute would lock the test's address out."""
    for _ in range(12):
        if await check():
            return
        await asyncio.sleep(0.25)
    assert await check()


async def test_a_created_key_opens_the_gateway_at_once_without_reload(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    made = keys(gateway, "create", "app")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("sk-hx-") and "shown once" in made.stderr
    # No waiting, no polling: the gateway reads the store again before it refuses a
    # key that looks like a stored one.
    assert await _status(client, gateway, secret) == 200
    await wait_for(lambda: "key=app" in gateway.logs())  # the access line names it


async def test_a_key_created_while_the_gateway_holds_the_store_open_opens_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    # `hxgw keys` closes its connection to the SQLite file the gateway holds open; it
    # must not take itself for the last one and delete the WAL under the gateway.
    _stored_key(tmp_path / "state", "before")
    gateway = await start_gateway(env={"HX_STATE_DIR": str(tmp_path / "state")})
    for name in ("first", "second"):
        # A made-up stored key is answered after the gateway's next read of the store.
        assert await _status(client, gateway, new_key("sk-hx")) == 401
        made = keys(gateway, "create", name)
        assert made.returncode == 0, made.stderr
        assert await _status(client, gateway, made.stdout.strip()) == 200


async def test_a_made_up_stored_key_is_refused_after_the_next_read_of_the_store(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    assert await _status(client, gateway, "sk-hx-" + "x" * 43) == 401
    assert await _status(client, gateway, "sk-other-key") == 401


async def test_a_revoked_key_is_refused_within_a_second(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    secret = keys(gateway, "create", "app").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, secret))
    assert keys(gateway, "revoke", "app").returncode == 0

    async def refused() -> bool:
        return await _status(client, gateway, secret) == 401

    await _within_a_second(refused)


async def _refusal(client: aiohttp.ClientSession, gateway: Gateway, secret: str) -> str:
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        assert resp.status == 401
        return str((await resp.json())["error"]["message"])


async def _told_past_the_lockout(
    client: aiohttp.ClientSession, gateway: Gateway, secret: str, why: str
) -> None:
    """A key that once worked is refused with `why` more often than `max_bad_keys: 2`
    allows bad keys: it counts as none, and the address is not locked out."""
    for _ in range(5):
        assert await _refusal(client, gateway, secret) == why


async def test_a_revoked_key_s_holder_is_told_it_was_revoked_and_the_log_names_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    secret = keys(gateway, "create", "app").stdout.strip()
    assert keys(gateway, "revoke", "app").returncode == 0
    await _within_a_second(lambda: _refused(client, gateway, secret))
    assert await _refusal(client, gateway, secret) == "this API key was revoked"
    assert await _refusal(client, gateway, "sk-hx-" + "y" * 43) == "invalid API key"
    await wait_for(lambda: "refused a key that was revoked key=app" in gateway.logs())


async def test_a_client_retrying_a_revoked_key_does_not_lock_out_its_address(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # An old client behind the office's NAT keeps its revoked key: no guess, no lockout.
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 2}})
    old = keys(gateway, "create", "app").stdout.strip()
    assert keys(gateway, "revoke", "app").returncode == 0
    await _within_a_second(lambda: _refused(client, gateway, old))
    await _told_past_the_lockout(client, gateway, old, "this API key was revoked")
    new = keys(gateway, "create", "app2").stdout.strip()
    assert await _status(client, gateway, new) == 200


async def test_a_revoked_key_whose_name_a_new_key_took_is_still_refused_as_revoked(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # The app's old deployment, behind the same NAT, keeps its revoked key while the new
    # one gets a key of the same name: the old key is no guess, and locks nobody out.
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 2}})
    old = keys(gateway, "create", "app").stdout.strip()
    assert keys(gateway, "revoke", "app").returncode == 0
    new = keys(gateway, "create", "app").stdout.strip()
    await _within_a_second(lambda: _refused(client, gateway, old))
    await _told_past_the_lockout(client, gateway, old, "this API key was revoked")
    assert await _status(client, gateway, new) == 200


async def test_an_expired_key_s_holder_is_told_it_has_expired(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    # Time for the command and the gateway's next read of the store on a busy machine.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
    secret = keys(gateway, "create", "app", "--expires", soon.isoformat()).stdout.strip()
    assert await _status(client, gateway, secret) == 200
    await asyncio.sleep(max(0.0, (soon - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    assert await _refusal(client, gateway, secret) == "this API key has expired"
    await wait_for(lambda: "refused a key that has expired key=app" in gateway.logs())


def test_revoking_a_revoked_key_again_succeeds_and_says_when_it_was(tmp_path: Path):
    dirs = _unserved(tmp_path)
    keys(dirs, "create", "app")
    assert keys(dirs, "revoke", "app").returncode == 0
    again = keys(dirs, "revoke", "app")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("key app was revoked already, at 20")


def test_a_revoked_key_s_name_may_be_taken_again_and_that_is_said(tmp_path: Path):
    dirs = _unserved(tmp_path)
    assert keys(dirs, "create", "app", "--rpm", "60").returncode == 0
    assert keys(dirs, "revoke", "app").returncode == 0
    again = keys(dirs, "create", "app")
    assert again.returncode == 0 and "'app' was a revoked key's name" in again.stderr
    assert json.loads(keys(dirs, "list", "--json").stdout)[0]["rpm"] is None


def test_create_and_update_print_the_key_as_json_without_a_spend_they_do_not_read(tmp_path: Path):
    dirs = _unserved(tmp_path)
    made = json.loads(keys(dirs, "create", "app", "--budget", "5", "--json").stdout)
    assert made["secret"].startswith("sk-hx-") and made["budget"] == 5
    changed = json.loads(keys(dirs, "update", "app", "--rpm", "9", "--json").stdout)
    assert (changed["rpm"], changed["budget"]) == (9, 5)
    assert "spent" not in made and "spent" not in changed  # null would say "no budget"


async def test_a_rotated_key_keeps_its_old_secret_for_the_grace_period(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    old = keys(gateway, "create", "app").stdout.strip()
    new = keys(gateway, "rotate", "app", "--grace", "1h").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, new))
    assert await _status(client, gateway, old) == 200
    again = keys(gateway, "rotate", "app", "--grace", "0s")
    assert "the secret before the last rotation stops now, though its grace ran to" in again.stderr
    newest = again.stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, newest))
    assert await _status(client, gateway, new) == 401


async def test_a_secret_two_rotations_old_is_told_it_was_revoked_not_counted_as_a_guess(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # A second rotation within the grace ends the first old secret; its holder had been
    # told 'invalid API key' and counted against its address, the new key's holders too.
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 2}})
    first = keys(gateway, "create", "app").stdout.strip()
    keys(gateway, "rotate", "app", "--grace", "1h")
    newest = keys(gateway, "rotate", "app", "--grace", "1h").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, newest))
    await _told_past_the_lockout(client, gateway, first, "this API key was revoked")
    assert await _status(client, gateway, newest) == 200


async def test_a_rotated_key_s_old_secret_past_its_grace_is_told_so_after_the_store_changed(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # Any change to the store makes the gateway read it again: the old secret must still
    # be one that ended, not a bad key the guard counts against its address.
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 2}})
    old = keys(gateway, "create", "app").stdout.strip()
    assert await _status(client, gateway, old) == 200
    new = keys(gateway, "rotate", "app", "--grace", "1s").stdout.strip()
    await asyncio.sleep(1.2)
    other = keys(gateway, "create", "other").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, other))
    await _told_past_the_lockout(client, gateway, old, "this API key has expired")
    assert await _status(client, gateway, new) == 200


def test_rotating_an_expired_key_says_its_new_secret_has_expired_too(tmp_path: Path):
    dirs = _unserved(tmp_path)
    # A time already past when `keys create` reads it is refused: on a loaded machine
    # the command may start seconds late, so it is given longer until it is made.
    for seconds in (2, 4, 8, 16, 32):
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        created = keys(dirs, "create", "app", "--expires", soon.isoformat())
        if "has passed" not in created.stderr:
            break
    assert created.returncode == 0, created.stderr
    time.sleep(max(0.0, (soon - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    rotated = keys(dirs, "rotate", "app")
    assert rotated.returncode == 0 and rotated.stdout.startswith("sk-hx-")
    assert "expired at" in rotated.stderr and "--expires" in rotated.stderr


async def test_limits_set_by_update_apply_without_reload(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    secret = keys(gateway, "create", "app").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, secret))
    assert keys(gateway, "update", "app", "--rpm", "1").returncode == 0

    async def counted() -> int | None:
        """The status of an answer that carries the key's new limit, else None."""
        async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                               headers={"Authorization": f"Bearer {secret}"}) as resp:
            await resp.read()
            return resp.status if resp.headers.get("x-ratelimit-limit-requests") == "1" else None

    # The first request the limit counts has its minute's one; the next has none.
    first = await poll(counted, what="an answer under the key's new limit", interval=0.25)
    assert [first, await _status(client, gateway, secret)] == [200, 429]


async def test_none_and_never_take_a_limit_and_an_expiry_away_without_reload(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    secret = keys(gateway, "create", "app", "--rpm", "1", "--expires", "2030-01-31").stdout
    assert [await _status(client, gateway, secret.strip()) for _ in range(2)] == [200, 429]
    taken = keys(gateway, "update", "app", "--rpm", "none", "--expires", "never")
    assert taken.returncode == 0, taken.stderr
    (row,) = json.loads(keys(gateway, "list", "--json").stdout)
    assert (row["rpm"], row["expires"]) == (None, None)

    async def served() -> bool:
        return await _status(client, gateway, secret.strip()) == 200

    await poll(served, what="a request served past the minute's one", interval=0.25)


async def test_a_key_made_with_per_user_limits_holds_each_of_its_end_users_to_them(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    made = keys(gateway, "create", "app", "--user-rpm", "1")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()

    async def answered(user: str) -> int:
        async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, "user": user},
                               headers={"Authorization": f"Bearer {secret}"}) as resp:
            await resp.read()
            return resp.status

    assert [await answered("ann"), await answered("ann"), await answered("bo")] == [200, 429, 200]


def test_per_user_limits_are_listed_set_and_taken_away_by_update(tmp_path: Path):
    unserved = _unserved(tmp_path)
    made = keys(unserved, "create", "app", "--user-tpm", "5000", "--user-budget", "2",
                "--user-budget-period", "7d")
    assert made.returncode == 0, made.stderr
    (row,) = json.loads(keys(unserved, "list", "--json").stdout)
    assert row["per_user"] == {"rpm": None, "tpm": 5000, "max_parallel": None, "budget": 2.0,
                               "budget_period": "7d"}
    table = keys(unserved, "list").stdout.splitlines()
    assert table[0].endswith("EACH END USER")
    assert table[1].endswith("tpm 5000, budget 2.00/7d")
    changed = keys(unserved, "update", "app", "--user-tpm", "none", "--user-budget", "none",
                   "--user-max-parallel", "3", "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["per_user"]["max_parallel"] == 3
    (row,) = json.loads(keys(unserved, "list", "--json").stdout)
    assert row["per_user"] == {"rpm": None, "tpm": None, "max_parallel": 3, "budget": None,
                               "budget_period": None}


def test_a_budget_period_given_to_a_key_without_a_budget_is_said_to_wait_for_one(tmp_path: Path):
    dirs = _unserved(tmp_path)
    keys(dirs, "create", "app")
    changed = keys(dirs, "update", "app", "--budget-period", "7d")
    assert changed.returncode == 0
    assert "app has no budget: its period applies once it has one (--budget)" in changed.stderr


def test_a_key_created_with_a_budget_period_and_no_budget_is_said_to_wait_for_one(
    tmp_path: Path,
):
    made = keys(_unserved(tmp_path), "create", "app", "--budget-period", "7d")
    assert made.returncode == 0 and made.stdout.startswith("sk-hx-")
    assert "app has no budget: its period applies once it has one (--budget)" in made.stderr


@pytest.mark.parametrize("action", [["create", "app"], ["update", "app"]])
def test_an_end_users_budget_period_without_their_budget_is_said_to_wait_for_one(
    tmp_path: Path, action: list[str],
):
    dirs = _unserved(tmp_path)
    if action[0] == "update":
        keys(dirs, "create", "app", "--budget", "5")
    said = keys(dirs, *action, "--user-budget-period", "7d")
    assert said.returncode == 0, said.stderr
    assert ("app gives its end users no budget: its period applies once it does"
            " (--user-budget)") in said.stderr


@pytest.mark.parametrize("limit", ["--rpm", "--user-rpm", "--user-tpm", "--user-max-parallel"])
def test_a_limit_of_zero_is_refused_and_the_error_names_none(tmp_path: Path, limit: str):
    dirs = _unserved(tmp_path)
    made = keys(dirs, "create", "app", limit, "0")
    assert made.returncode == 2 and "or none: '0'" in made.stderr


def test_piped_with_its_notes_the_secret_comes_before_the_note_that_names_it(tmp_path: Path):
    dirs = _unserved(tmp_path)
    env = {**os.environ, **{k: v for k, v in dirs.env().items()
                            if k in ("HX_STATE_DIR", "DATABASE_URL")}}
    env.pop("PYTHONUNBUFFERED", None)  # as on a user's machine: a pipe is block-buffered
    piped = subprocess.run(
        ["bash", "-c", f"{HXGW} keys create app --config-dir {dirs.config_dir} 2>&1 | cat"],
        env=env, capture_output=True, text=True, timeout=30)
    lines = piped.stdout.splitlines()
    secret = next(i for i, line in enumerate(lines) if line.startswith("sk-hx-"))
    assert "the secret above" in lines[secret + 1]


def test_changing_a_revoked_key_says_how_to_make_a_new_one(tmp_path: Path):
    dirs = _unserved(tmp_path)
    assert keys(dirs, "create", "app").returncode == 0
    assert keys(dirs, "revoke", "app").returncode == 0
    changed = keys(dirs, "update", "app", "--rpm", "5")
    assert changed.returncode == 1  # a failure, not bad usage
    assert "is revoked (hxgw keys create app makes a new one)" in changed.stderr


@pytest.mark.parametrize("action", [("update", "nosuch", "--rpm", "5"), ("rotate", "nosuch"),
                                    ("revoke", "nosuch")])
def test_a_key_the_store_lacks_is_a_failure_not_bad_usage(
    tmp_path: Path, action: tuple[str, ...]
):
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    _stored_key(tmp_path / "state", "app")
    changed = subprocess.run([HXGW, "keys", *action, "--config-dir", str(tmp_path / "none")],
                             env=env, capture_output=True, text=True, timeout=30)
    assert changed.returncode == 1
    assert "no key named 'nosuch'" in changed.stderr


def test_a_key_made_again_under_a_live_key_s_name_is_a_failure(tmp_path: Path):
    _stored_key(tmp_path / "state", "app")
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", "create", "app", "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 1 and "a key named 'app' exists" in made.stderr


def test_an_update_that_changes_nothing_is_bad_usage(tmp_path: Path):
    _stored_key(tmp_path / "state", "app")
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    changed = subprocess.run([HXGW, "keys", "update", "app", "--config-dir", str(tmp_path / "none")],
                             env=env, capture_output=True, text=True, timeout=30)
    assert changed.returncode == 2
    assert "nothing to change: give at least one option" in changed.stderr


def test_list_shows_names_and_limits_never_secrets(tmp_path: Path):
    dirs = _unserved(tmp_path)
    secret = keys(dirs, "create", "app", "--rpm", "60", "--groups", "chat").stdout.strip()
    listed = keys(dirs, "list", "--json")
    (row,) = json.loads(listed.stdout)
    assert (row["name"], row["rpm"], row["groups"]) == ("app", 60, ["chat"])
    assert secret not in listed.stdout and "digest" not in listed.stdout
    assert "app" in keys(dirs, "list").stdout


def test_list_shows_the_keys_file_s_keys_beside_the_stored_ones(tmp_path: Path):
    keys_file = tmp_path / "keys.yaml"
    entry = {"name": "batch-job", "key": new_key("sk-job"), "groups": ["chat"], "rpm": 30}
    keys_file.write_text(yaml.safe_dump({"keys": [entry]}))
    keys_file.chmod(0o600)
    dirs = _unserved(tmp_path, gateway={"auth": {"keys_file": str(keys_file)}})
    keys(dirs, "create", "app")
    listed = json.loads(keys(dirs, "list", "--json").stdout)
    assert [(r["name"], r["source"], r["state"], r["groups"], r["rpm"]) for r in listed] == [
        ("app", "store", "active", None, None), ("batch-job", "keys file", "active", ["chat"], 30)
    ]
    assert entry["key"] not in keys(dirs, "list").stdout


def test_list_shows_the_limits_a_keys_file_key_gives_each_end_user(tmp_path: Path):
    keys_file = tmp_path / "keys.yaml"
    entry = {"name": "batch-job", "key": new_key("sk-job"), "per_user": {"rpm": 3}}
    keys_file.write_text(yaml.safe_dump({"keys": [entry]}))
    keys_file.chmod(0o600)
    dirs = _unserved(tmp_path, gateway={"auth": {"keys_file": str(keys_file)}})
    (row,) = json.loads(keys(dirs, "list", "--json").stdout)
    assert row["per_user"] == {"rpm": 3, "tpm": None, "max_parallel": None, "budget": None,
                               "budget_period": None}
    assert keys(dirs, "list").stdout.splitlines()[1].endswith("rpm 3")


@pytest.mark.parametrize("action", [["revoke"], ["update", "--rpm", "5"], ["rotate"]])
def test_changing_a_keys_file_key_says_to_change_it_in_the_file(
    tmp_path: Path, action: list[str]
):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"keys": [{"name": "batch-job", "key": new_key()}]}))
    keys_file.chmod(0o600)
    dirs = _unserved(tmp_path, gateway={"auth": {"keys_file": str(keys_file)}})
    changed = keys(dirs, action[0], "batch-job", *action[1:])
    assert changed.returncode == 1
    assert "'batch-job' is a key of the keys file (gateway.yaml's auth.keys_file)" in (
        changed.stderr)
    assert "note:" not in changed.stderr


def _a_keys_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A keys file with one key, `batch-job`: the file, the key."""
    keys_file = tmp_path / "keys.yaml"
    job = {"name": "batch-job", "key": new_key("sk-job")}
    keys_file.write_text(yaml.safe_dump({"keys": [job]}))
    keys_file.chmod(0o600)
    return keys_file, job


async def _with_a_keys_file(
    start_gateway: StartGateway, tmp_path: Path, **auth: object
) -> tuple[Gateway, Path, dict[str, str]]:
    """A gateway whose keys file has one key, `batch-job`: the gateway, the file, the key."""
    keys_file, job = _a_keys_file(tmp_path)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys_file), **auth}})
    return gateway, keys_file, job


def test_rotating_a_stored_key_a_keys_file_key_hides_says_its_secret_opens_nothing(tmp_path: Path):
    keys_file, job = _a_keys_file(tmp_path)
    dirs = _unserved(tmp_path, gateway={"auth": {"keys_file": str(keys_file)}})
    keys(dirs, "create", "app")
    # Later the keys file gains a key of that name, which wins the clash.
    keys_file.write_text(yaml.safe_dump({"keys": [job, {"name": "app", "key": new_key()}]}))
    rotated = keys(dirs, "rotate", "app")
    assert rotated.returncode == 0 and rotated.stdout.startswith("sk-hx-")
    assert "the keys file has a key named 'app'" in rotated.stderr


async def test_a_stored_key_a_keys_file_key_hides_is_told_so_not_counted_as_a_guess(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # Its holder had been told 'invalid API key' and counted against its address.
    gateway, keys_file, job = await _with_a_keys_file(start_gateway, tmp_path, max_bad_keys=2)
    stored = keys(gateway, "create", "app").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, stored))
    keys_file.write_text(yaml.safe_dump({"keys": [job, {"name": "app", "key": new_key()}]}))
    gateway.signal(signal.SIGHUP)

    async def refused() -> bool:  # the store is read again within a second of the reload
        return await _status(client, gateway, stored) == 401

    await _within_a_second(refused)
    await _told_past_the_lockout(
        client, gateway, stored,
        "this API key is set aside: the gateway's config has a key of its name")
    assert await _status(client, gateway, job["key"]) == 200


async def test_a_secret_made_for_a_hidden_key_is_told_so_at_its_first_use(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # The gateway waits for its next read of the store for a secret it does not know; that
    # read has the new secret among those set aside, and its holder had been told
    # 'invalid API key', counted as a guess, until the read after.
    gateway, keys_file, job = await _with_a_keys_file(start_gateway, tmp_path, max_bad_keys=2)
    stored = keys(gateway, "create", "app").stdout.strip()
    keys_file.write_text(yaml.safe_dump({"keys": [job, {"name": "app", "key": new_key()}]}))
    gateway.signal(signal.SIGHUP)
    await _within_a_second(lambda: _refused(client, gateway, stored))
    rotated = keys(gateway, "rotate", "app").stdout.strip()
    await _told_past_the_lockout(
        client, gateway, rotated,
        "this API key is set aside: the gateway's config has a key of its name")


async def test_a_reload_that_renames_a_stored_key_s_group_warns_of_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # Only check-config had said it: the gateway refused the key's requests (403) silently.
    gateway = await start_gateway()
    secret = keys(gateway, "create", "app", "--groups", "solo").stdout.strip()
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": "solo"},
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        assert resp.status == 200  # the gateway has read the new key
    warned = await reloaded_without_solo(gateway, "a stored key is limited to groups the config lacks")
    assert len(warned) == 1 and "key=app groups=solo" in warned[0]


def rename_solo(config_dir: Path) -> None:
    """routing.yaml with the group `solo` renamed `single`."""
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "groups": {"chat": ["alpha", "beta"], "single": ["gamma"]}}}
    (config_dir / "routing.yaml").write_text(yaml.safe_dump(routing))


async def reloaded_without_solo(gateway: Gateway, warning: str) -> list[str]:
    """The log lines saying `warning` once a reload has renamed the group `solo`."""
    rename_solo(gateway.config_dir)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=2" in gateway.logs())
    return [line for line in gateway.logs().splitlines() if warning in line]


def check_config(dirs: Unserved) -> subprocess.CompletedProcess[str]:
    """`hxgw check-config` with the store settings of `dirs`, as its operator would run it."""
    env = {**os.environ, **{k: v for k, v in dirs.env().items()
                            if k in ("HX_STATE_DIR", "DATABASE_URL")}}
    return subprocess.run([HXGW, "check-config", "--config-dir", str(dirs.config_dir)],
                          env=env, capture_output=True, text=True, timeout=30)


def test_check_config_warns_of_a_stored_key_limited_to_a_group_the_config_renamed(tmp_path: Path):
    dirs = _unserved(tmp_path)
    keys(dirs, "create", "app", "--groups", "solo")
    rename_solo(dirs.config_dir)
    checked = check_config(dirs)
    assert checked.returncode == 0, checked.stderr
    assert "warning: the stored key 'app' is limited to groups the config lacks (solo)" in (
        checked.stdout)


async def test_list_shows_what_a_budgeted_key_spent_this_period_and_what_is_left(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=PRICED)
    secret = keys(gateway, "create", "app", "--budget", "5").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, secret))
    await wait_for(lambda: ledger_rows(gateway), timeout=10)
    (row,) = json.loads(keys(gateway, "list", "--json").stdout)
    assert row["spent"] == ledger_rows(gateway)[0]["cost"] > 0
    table = keys(gateway, "list").stdout.splitlines()
    assert table[0].split()[7:10] == ["BUDGET", "SPENT", "LEFT"]
    assert table[1].split()[7:10] == ["5.00/1d", money(row["spent"]), money(5 - row["spent"])]


def _cli_with_spend(tmp_path: Path) -> Any:
    """`hxgw ...` on a SQLite store whose key `app` (budget 1) spent ten rows of 0.0095,
    which add up to 0.09499999999999999 in floats."""
    state, config_dir = tmp_path / "state", write_config(tmp_path / "config", "http://x:9",
                                                         models=PRICED)
    env = {**os.environ, "HX_STATE_DIR": str(state)}
    env.pop("DATABASE_URL", None)

    def run(*args: str) -> str:
        done = subprocess.run([HXGW, *args, "--config-dir", str(config_dir)], env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("keys", "create", "app", "--budget", "1")
    ledger = Ledger(open_database(None, state), state / "spool")
    for n in range(10):
        ledger.record(UsageRow(request_id=f"req-{n}", key_name="app", route="chat",
                               model_group="chat", model="alpha", status=200, cost=0.0095,
                               started=time.time() - 1, ended=time.time()))
    ledger.close()
    return run


def test_list_says_the_spend_hxgw_usage_says_to_the_cent(tmp_path: Path):
    # The list said SPENT 0.09 where `hxgw usage` said COST 0.10 for the same rows.
    run = _cli_with_spend(tmp_path)
    (used,) = json.loads(run("usage", "--format", "json"))["rows"]
    (listed,) = json.loads(run("keys", "list", "--json"))
    assert listed["spent"] == used["cost"] == 0.095
    assert run("keys", "list").splitlines()[1].split()[8] == "0.10"


def test_list_s_spent_and_left_add_up_to_the_budget_as_shown(tmp_path: Path):
    # 0.095 spent of 1.00 read SPENT 0.10, LEFT 0.91: each rounded on its own.
    row = _cli_with_spend(tmp_path)("keys", "list").splitlines()[1].split()
    assert row[7:10] == ["1.00/1d", "0.10", "0.90"]


def test_list_json_says_each_key_s_state_and_its_times_in_utc(tmp_path: Path):
    dirs = _unserved(tmp_path)
    keys(dirs, "create", "app", "--expires", "2030-01-31")
    keys(dirs, "create", "old")
    keys(dirs, "revoke", "old")
    app, old = json.loads(keys(dirs, "list", "--json").stdout)
    assert (app["state"], app["expires"], old["state"]) == ("active", "2030-01-31T00:00:00Z",
                                                           "revoked")
    assert dt.datetime.strptime(old["revoked"], "%Y-%m-%dT%H:%M:%SZ")


def _stored_key(state: Path, name: str) -> str:
    env = {**os.environ, "HX_STATE_DIR": str(state)}
    made = subprocess.run([HXGW, "keys", "create", name, "--config-dir", str(state / "none")],
                          env=env, capture_output=True, text=True, timeout=30, check=True)
    return made.stdout.strip()


async def test_a_gateway_serves_on_stored_keys_alone_without_master_key(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    secret = _stored_key(tmp_path / "state", "app")
    gateway = await start_gateway(env={"MASTER_KEY": "", "HX_STATE_DIR": str(tmp_path / "state")})
    assert await _status(client, gateway, secret) == 200


async def test_a_store_whose_keys_are_all_revoked_is_no_key_to_start_on(
    start_gateway: StartGateway, tmp_path: Path
):
    state = tmp_path / "state"
    _stored_key(state, "app")
    subprocess.run([HXGW, "keys", "revoke", "app", "--config-dir", str(state / "none")],
                   env={**os.environ, "HX_STATE_DIR": str(state)}, check=True,
                   capture_output=True, timeout=30)
    gateway = await start_gateway(env={"MASTER_KEY": "", "HX_STATE_DIR": str(state)}, wait=False)
    assert gateway.process is not None and gateway.process.wait(timeout=15) == 1
    assert "no client key" in gateway.logs()


def test_a_key_named_like_a_config_key_is_refused(tmp_path: Path):
    dirs = _unserved(tmp_path)
    made = keys(dirs, "create", "master")
    assert made.returncode == 2 and "'master' is MASTER_KEY's name: choose another" in made.stderr


def test_a_limit_past_what_the_stores_hold_is_refused_as_bad_usage(tmp_path: Path):
    dirs = _unserved(tmp_path)
    for option, value in (("--rpm", "99999999999999999999"), ("--budget", "inf"),
                          ("--budget", "nan")):
        made = keys(dirs, "create", "app", option, value)
        assert made.returncode == 2, made.stderr
        assert "Traceback" not in made.stderr and value in made.stderr


@pytest.mark.parametrize(("option", "value"), [
    ("--rpm", "\uff15"),  # a full-width 5, which int() reads as 5
    ("--rpm", "\u00b2"),  # a superscript 2, a digit to str.isdigit() alone
    ("--budget", "1_0"),
    ("--budget", "\uff15"),
])
def test_a_limit_or_budget_not_in_plain_ascii_digits_is_refused_naming_its_option(
    tmp_path: Path, option: str, value: str
):
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", "create", "app", option, value,
                           "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 2 and made.stdout == ""
    assert f"argument {option}: not " in made.stderr and repr(value) in made.stderr
    assert "_positive" not in made.stderr and "_money" not in made.stderr


def test_empty_groups_are_refused_and_all_opens_every_group(tmp_path: Path):
    dirs = _unserved(tmp_path)
    assert keys(dirs, "create", "app", "--groups", "chat").returncode == 0
    emptied = keys(dirs, "update", "app", "--groups", "")
    assert emptied.returncode == 2 and "name at least one group, or all" in emptied.stderr
    assert json.loads(keys(dirs, "list", "--json").stdout)[0]["groups"] == ["chat"]
    assert keys(dirs, "update", "app", "--groups", "all").returncode == 0
    assert json.loads(keys(dirs, "list", "--json").stdout)[0]["groups"] is None


def test_a_group_named_twice_is_stored_once_in_its_first_place(tmp_path: Path):
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    run = [HXGW, "keys", "create", "app", "--groups", "solo,chat,solo", "--config-dir",
           str(tmp_path / "none")]
    assert subprocess.run(run, env=env, capture_output=True, timeout=30).returncode == 0
    listed = subprocess.run([HXGW, "keys", "list", "--json"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert json.loads(listed.stdout)[0]["groups"] == ["solo", "chat"]


def test_a_key_that_could_never_serve_is_refused_when_made(tmp_path: Path):
    dirs = _unserved(tmp_path)
    unknown = keys(dirs, "create", "app", "--groups", "chat,nosuch")
    assert unknown.returncode == 2
    assert "no group named 'nosuch'" in unknown.stderr and "chat, emb, solo" in unknown.stderr
    expired = keys(dirs, "create", "app", "--expires", "2020-01-01")
    assert expired.returncode == 2 and "'2020-01-01' has passed" in expired.stderr
    assert json.loads(keys(dirs, "list", "--json").stdout) == []


def test_a_misspelt_group_is_refused_with_the_group_it_looks_like(tmp_path: Path):
    typo = keys(_unserved(tmp_path), "create", "app", "--groups", "chta")
    assert typo.returncode == 2
    assert "no group named 'chta' (did you mean 'chat'?)" in typo.stderr


@pytest.mark.parametrize("args", [
    ("create", "far", "--expires", "9999-12-31T23:59:59-12:00"),
    ("create", "far", "--expires", "9999-12-31"),
    ("rotate", "far", "--grace", "9" * 40 + "d"),
])
def test_a_date_or_grace_past_what_a_timestamp_holds_is_refused_as_bad_usage(
    tmp_path: Path, args: tuple[str, ...],
):
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", *args, "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 2 and "Traceback" not in made.stderr
    listed = subprocess.run([HXGW, "keys", "list"], env=env, capture_output=True, text=True,
                            timeout=30)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr


@pytest.mark.parametrize("when", ["2030-01-31T09:00", "2030-01-31 09:00:00"])
def test_an_expiry_time_without_a_zone_is_refused_as_bad_usage(tmp_path: Path, when: str):
    # It was taken for UTC's: hours off for an operator elsewhere, and said nowhere.
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", "create", "app", "--expires", when,
                           "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 2 and "has a time but no zone" in made.stderr


def test_groups_not_checked_for_want_of_a_config_are_said_so(tmp_path: Path):
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", "create", "app", "--groups", "hx-chta",
                           "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 0 and made.stdout.startswith("sk-hx-")
    assert ": its name and groups were not checked against it" in made.stderr


def test_a_name_not_checked_for_want_of_a_config_is_said_so(tmp_path: Path):
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", "create", "app", "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 0
    assert (": its name was not checked against it (a keys-file key of the same name "
            "wins; give --config-dir)") in made.stderr


def _keys_without_the_metrics_key(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`hxgw keys` in a shell that lacks the service's HX_METRICS_KEY, which its config
    names: the config does not load there."""
    config_dir = write_config(tmp_path / "config", "http://127.0.0.1:9",
                              gateway={"metrics": {"key_env": "HX_METRICS_KEY"}})
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HX_METRICS_KEY")}
    env["HX_STATE_DIR"] = str(tmp_path / "state")
    return subprocess.run([HXGW, "keys", *args, "--config-dir", str(config_dir)], env=env,
                          capture_output=True, text=True, timeout=30)


UNSET = "metrics.key_env: names 'HX_METRICS_KEY', which is not set"


def test_groups_given_where_the_config_does_not_load_are_refused_with_its_problem(
    tmp_path: Path,
):
    made = _keys_without_the_metrics_key(tmp_path, "create", "app", "--groups", "chat")
    assert made.returncode == 1 and made.stdout == ""
    assert UNSET in made.stderr and "no readable config" not in made.stderr
    assert "its groups cannot be checked, so the key was not made" in made.stderr
    assert "--env-file /etc/hx-gateway-ml.env" in made.stderr
    assert _keys_without_the_metrics_key(tmp_path, "list", "--json").stdout.strip() == "[]"


def test_a_key_made_where_the_config_does_not_load_is_noted_with_its_problem(tmp_path: Path):
    made = _keys_without_the_metrics_key(tmp_path, "create", "app")
    assert made.returncode == 0 and made.stdout.startswith("sk-hx-")
    assert UNSET in made.stderr and ": its name was not checked against it" in made.stderr
    assert "no readable config" not in made.stderr


def test_keys_listed_where_the_config_does_not_load_say_its_problem(tmp_path: Path):
    listed = _keys_without_the_metrics_key(tmp_path, "list")
    assert listed.returncode == 0
    assert UNSET in listed.stderr and "the keys of its keys file are not listed" in listed.stderr


def test_the_service_s_variables_given_by_env_file_let_the_groups_be_checked(tmp_path: Path):
    (tmp_path / "hx.env").write_text("HX_METRICS_KEY=metrics-" + "k" * 32 + "\n")
    env_file = ("--env-file", str(tmp_path / "hx.env"))
    unknown = _keys_without_the_metrics_key(tmp_path, "create", "app", "--groups", "nosuch",
                                            *env_file)
    assert unknown.returncode == 2 and "no group named 'nosuch'" in unknown.stderr
    made = _keys_without_the_metrics_key(tmp_path, "create", "app", "--groups", "chat", *env_file)
    assert made.returncode == 0 and made.stdout.startswith("sk-hx-"), made.stderr
    assert "not checked" not in made.stderr


@pytest.mark.parametrize("budget", ["--budget", "--user-budget"])
def test_a_budget_without_any_priced_model_is_made_with_a_note(tmp_path: Path, budget: str):
    dirs = _unserved(tmp_path)  # the default models have no price
    made = keys(dirs, "create", "app", budget, "5")
    assert made.returncode == 0 and made.stdout.startswith("sk-hx-")
    assert "no model of the config has a price" in made.stderr


async def test_two_instances_on_one_postgresql_refuse_a_revoked_key_within_a_second(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    own_postgres: Postgres,  # noqa: F811
):
    env = {"DATABASE_URL": own_postgres.new_database()}
    first, second = await start_gateway(env=env), await start_gateway(env=env)
    secret = keys(first, "create", "app").stdout.strip()
    for gateway in (first, second):
        await _within_a_second(lambda g=gateway: _opens(client, g, secret))
    assert keys(second, "revoke", "app").returncode == 0
    for gateway in (first, second):
        await _within_a_second(lambda g=gateway: _refused(client, g, secret))


async def test_stored_keys_on_postgresql_need_no_writable_state_directory(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    own_postgres: Postgres,  # noqa: F811
):
    # A read-only root file system (a container) with PostgreSQL: before, the stored
    # keys were off, as if the SQLite file were to be made in the state directory.
    env = {"DATABASE_URL": own_postgres.new_database(), "HX_STATE_DIR": "/proc/hxgw-no-state"}
    gateway = await start_gateway(env=env)
    secret = keys(gateway, "create", "app").stdout.strip()
    await _within_a_second(lambda: _opens(client, gateway, secret))
    assert "the usage ledger has no spool" in gateway.logs()


@pytest.mark.postgres
async def test_a_stored_key_read_only_after_a_start_without_postgresql_keeps_its_spend(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    own_postgres: Postgres,  # noqa: F811
):
    # Started while PostgreSQL was down, the gateway could read neither the stored keys
    # nor what they spent: once it reads them, a budget must go on from the ledger's
    # spend, not from nothing.
    gateway = await start_gateway(models=PRICED, env={"DATABASE_URL": own_postgres.new_database()})
    secret = keys(gateway, "create", "app", "--budget", "0.05").stdout.strip()
    # Each such request reserves 0.042 (22 tokens in, 10 out) and costs about 0.013.
    assert await _post_status(client, gateway, secret) == 200
    gateway.stop()  # its ledger rows are written before it exits
    own_postgres.stop()
    await gateway.start().wait_ready()
    own_postgres.start()
    await _within_a_second(lambda: _ready(client, gateway))  # the key store is read
    assert await _post_status(client, gateway, secret) == 429


async def _ready(client: aiohttp.ClientSession, gateway: Gateway) -> bool:
    async with client.get(gateway.url + "/readyz") as resp:
        return resp.status == 200


async def _post_status(client: aiohttp.ClientSession, gateway: Gateway, secret: str) -> int:
    async with client.post(gateway.url + "/v1/chat/completions", json={**CHAT, "max_tokens": 10},
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        await resp.read()
        return resp.status


async def test_every_worker_sees_a_new_key(start_gateway: StartGateway):
    gateway = await start_gateway(gateway={"workers": 2})
    secret = keys(gateway, "create", "app").stdout.strip()
    async with aiohttp.ClientSession() as fresh:
        await _within_a_second(lambda: _opens(fresh, gateway, secret))
    await asyncio.sleep(1.0)  # each worker reads the store once a second, the other too
    # New connections, which the kernel spreads over the workers, until both have served
    # one: twelve all landed on one worker once.
    for _ in range(40):
        async with aiohttp.ClientSession() as fresh:
            assert await _status(fresh, gateway, secret) == 200
        if {"0", "1"} <= set(_workers_that_served(gateway)):
            return
    raise AssertionError(f"only workers {set(_workers_that_served(gateway))} served the key")


def _workers_that_served(gateway: Gateway) -> list[str]:
    return [line.rsplit("worker=", 1)[1].split()[0] for line in gateway.logs().splitlines()
            if "key=app" in line and "worker=" in line]


async def _opens(client: aiohttp.ClientSession, gateway: Gateway, secret: str) -> bool:
    return await _status(client, gateway, secret) == 200


async def _refused(client: aiohttp.ClientSession, gateway: Gateway, secret: str) -> bool:
    return await _status(client, gateway, secret) == 401


def test_list_names_the_store_it_read_and_makes_none_where_there_is_none(tmp_path: Path):
    state = tmp_path / "not-yet"
    env = {**os.environ, "HX_STATE_DIR": str(state)}
    listed = subprocess.run([HXGW, "keys", "list", "--config-dir", str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and listed.stdout.strip() == "no keys yet: hxgw keys create NAME"
    assert f"the store is SQLite {state}" in listed.stderr
    assert "no store there yet (is it the gateway's?" in listed.stderr
    assert not state.exists()


def test_a_key_made_in_a_new_store_says_the_store_is_new(tmp_path: Path):
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "elsewhere")}
    env.pop("DATABASE_URL", None)
    run = [HXGW, "keys", "create", "app", "--config-dir", str(tmp_path / "none")]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=30)
    assert first.returncode == 0 and "that store is new" in first.stderr
    run[3] = "other"
    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 0 and "that store is new" not in second.stderr


async def test_a_stored_key_the_gateway_cannot_check_yet_gets_503_not_401(
    start_gateway: StartGateway, client: aiohttp.ClientSession, dead_port: int
):
    # Started while its PostgreSQL is down: no read of the key store has succeeded.
    down = f"postgresql://hxgw@127.0.0.1:{dead_port}/hxgw"
    gateway = await start_gateway(env={"DATABASE_URL": down},
                                  gateway={"auth": {"max_bad_keys": 2}})
    for _ in range(3):  # past max_bad_keys, were each counted as a bad key
        async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                               headers={"Authorization": "Bearer sk-hx-" + "a" * 43}) as resp:
            assert resp.status == 503, await resp.text()
            assert resp.headers["Retry-After"] == "1"
            assert "key store cannot be read" in (await resp.json())["error"]["message"]
    assert await _status(client, gateway, gateway.key) == 200  # the config's keys work


def test_a_state_dir_that_is_a_file_is_said_to_be_one(tmp_path: Path):
    state = tmp_path / "state"
    state.write_text("")
    env = {**os.environ, "HX_STATE_DIR": str(state)}
    env.pop("DATABASE_URL", None)
    made = subprocess.run([HXGW, "keys", "create", "app", "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 1
    assert f"{state} is not a directory (HX_STATE_DIR" in made.stderr
    assert "Errno" not in made.stderr and "store is new" not in made.stderr


@pytest.mark.parametrize("action", [("list",), ("create", "app")])
def test_a_state_directory_this_user_may_not_read_is_said_so_in_one_line(
    tmp_path: Path, action: tuple[str, ...]
):
    locked = tmp_path / "state"
    locked.mkdir(mode=0)
    env = {**os.environ, "HX_STATE_DIR": str(locked)}
    env.pop("DATABASE_URL", None)
    made = subprocess.run([*as_another_user(locked), HXGW, "keys", *action, "--config-dir",
                           str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 1
    assert made.stderr.splitlines()[1:] == [
        f"hxgw keys: cannot read the key store at {locked}/hxgw.db: permission denied (run as"
        " root or as the service's user)"
    ]


def test_a_store_it_cannot_open_is_said_with_where_the_gateway_s_store_is(tmp_path: Path):
    # HX_STATE_DIR left unset, or mistyped, names a directory that cannot be made.
    (tmp_path / "file").write_text("")
    env = {**os.environ, "HX_STATE_DIR": str(tmp_path / "file" / "state")}
    env.pop("DATABASE_URL", None)
    made = subprocess.run([HXGW, "keys", "create", "app", "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 1
    assert "cannot use the key store" in made.stderr
    assert "is it the gateway's? HX_STATE_DIR or DATABASE_URL" in made.stderr, made.stderr


def test_a_postgresql_it_cannot_reach_is_not_said_to_be_a_state_directory_problem(
    tmp_path: Path,
):
    # The hint named HX_STATE_DIR, `make run`'s .hxgw-state and /var/lib/hxgw, none of
    # which holds keys when DATABASE_URL is set: an operator whose PostgreSQL was down
    # was sent to look at directories.
    env = {**os.environ, "DATABASE_URL": f"postgresql://hxgw@127.0.0.1:{free_port()}/hxgw",
           "HX_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([HXGW, "keys", "list", "--config-dir", str(tmp_path / "none")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 1
    assert "cannot use the key store: PostgreSQL" in made.stderr
    assert "HX_STATE_DIR" not in made.stderr and "hxgw-state" not in made.stderr, made.stderr
    assert "is PostgreSQL up, and DATABASE_URL the gateway's?" in made.stderr


def test_keys_run_in_a_checkout_that_make_run_used_say_theirs_is_another_store(
    tmp_path: Path,
):
    # Without HX_STATE_DIR a shell reaches the service's store: a key made there opened
    # nothing on the gateway `make run` serves, and nothing said so.
    (tmp_path / ".hxgw-state").mkdir()
    config_dir = write_config(tmp_path / "config", "http://127.0.0.1:9",
                              gateway={"store": {"state_dir": str(tmp_path / "elsewhere")}})
    env = {k: v for k, v in os.environ.items()
           if k not in ("HX_STATE_DIR", "DATABASE_URL", "HX_CONFIG_DIR")}
    listed = subprocess.run([HXGW, "keys", "list", "--config-dir", str(config_dir)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "is not `make run`'s store (.hxgw-state here): for that one, export " \
        "HX_STATE_DIR=$PWD/.hxgw-state" in listed.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="root working on another user's store")
def test_keys_made_by_root_in_the_service_s_state_directory_leave_its_files_the_service_s(
    tmp_path: Path,
):
    # Root's SQLite file (or its -wal, -shm) there would be one the service cannot write.
    config_dir = write_config(tmp_path / "config", "http://127.0.0.1:9")
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    os.chown(state, NOBODY, NOBODY)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HX_CONFIG_DIR")}
    env["HX_STATE_DIR"] = str(state)
    for command in (["keys", "create", "app"], ["keys", "list"], ["usage"]):
        done = subprocess.run([HXGW, *command, "--config-dir", str(config_dir)],
                              env=env, capture_output=True, text=True, timeout=30)
        assert "Traceback" not in done.stderr
        owners = {(p.name, p.stat().st_uid, p.stat().st_gid) for p in state.iterdir()}
        assert owners == {("hxgw.db", NOBODY, NOBODY)}, (command, owners)


NOBODY = 65534
