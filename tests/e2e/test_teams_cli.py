"""`hxgw teams`, as an operator runs it, against a serving gateway: a team made in the
store, keys put in it with `hxgw keys --team`, their requests held to its limits
together, and a change to it taking effect within a second, with no reload."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from hxgw.store import open_database
from hxgw.store.migrate import migrate
from hxgw.units import money
from hxgw.usage.schema import MIGRATIONS
from tests.conftest import StartGateway
from tests.e2e.test_cli_usage import usage
from tests.e2e.test_end_user_limits import PRICED
from tests.e2e.test_files_and_batches import ended_batch_of
from tests.e2e.test_keys_cli import (
    Unserved,
    _status,
    _unserved,
    _within_a_second,
    check_config,
    keys,
    reloaded_without_solo,
    rename_solo,
)
from tests.fixtures import HXGW, Gateway, ledger_rows, new_key


def teams(gateway: Gateway | Unserved, *args: str) -> subprocess.CompletedProcess[str]:
    """`hxgw teams ...` with the gateway's own store settings, as its operator would."""
    env = {**os.environ, **{k: v for k, v in gateway.env().items()
                            if k in ("HX_STATE_DIR", "DATABASE_URL")}}
    return subprocess.run([HXGW, "teams", *args, "--config-dir", str(gateway.config_dir)],
                          env=env, capture_output=True, text=True, timeout=30)


def _secret(gateway: Gateway | Unserved, name: str, *options: str) -> str:
    made = keys(gateway, "create", name, *options)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


async def test_keys_put_in_a_team_share_its_requests_per_minute(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    assert teams(gateway, "create", "search", "--rpm", "3").returncode == 0
    one, two = (_secret(gateway, name, "--team", "search") for name in ("one", "two"))
    await _within_a_second(lambda: _status_is(client, gateway, one, 200))
    assert [await _status(client, gateway, secret) for secret in (two, one, two)] == [
        200, 200, 429]


async def _status_is(client: aiohttp.ClientSession, gateway: Gateway, secret: str,
                     status: int) -> bool:
    return await _status(client, gateway, secret) == status


async def test_a_team_s_new_limit_holds_within_a_second_without_a_reload(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    teams(gateway, "create", "search", "--rpm", "100")
    secret = _secret(gateway, "one", "--team", "search")
    await _within_a_second(lambda: _status_is(client, gateway, secret, 200))
    assert teams(gateway, "update", "search", "--rpm", "1").returncode == 0
    await _within_a_second(lambda: _status_is(client, gateway, secret, 429))


async def test_a_key_taken_out_of_its_team_is_held_to_its_own_limits_alone(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    teams(gateway, "create", "search", "--rpm", "1")
    secret = _secret(gateway, "one", "--team", "search")
    await _within_a_second(lambda: _status_is(client, gateway, secret, 200))
    assert await _status(client, gateway, secret) == 429
    assert keys(gateway, "update", "one", "--team", "none").returncode == 0
    await _within_a_second(lambda: _status_is(client, gateway, secret, 200))


async def test_list_says_a_team_s_keys_and_what_they_spent_this_period(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=PRICED)
    teams(gateway, "create", "search", "--budget", "5", "--budget-period", "7d")
    secret = _secret(gateway, "one", "--team", "search")
    await _within_a_second(lambda: _status_is(client, gateway, secret, 200))
    gateway.stop()  # its ledger rows are written before it exits
    listed = teams(gateway, "list", "--json")
    (row,) = json.loads(listed.stdout)
    spent = keys(gateway, "list", "--json")
    (key,) = [k for k in json.loads(spent.stdout) if k["name"] == "one"]
    assert (row["name"], row["source"], row["keys"], row["budget_period"]) == (
        "search", "store", ["one"], "7d")
    assert row["spent"] > 0 and key["team"] == "search"


def test_a_team_with_keys_is_not_deleted(tmp_path: Any):
    dirs = _unserved(tmp_path)
    teams(dirs, "create", "search", "--rpm", "5")
    _secret(dirs, "one", "--team", "search")
    refused = teams(dirs, "delete", "search")
    assert refused.returncode == 1
    assert "has keys (one): move them out first" in refused.stderr
    keys(dirs, "update", "one", "--team", "none")
    assert teams(dirs, "delete", "search").returncode == 0


def test_a_key_cannot_join_a_team_there_is_none_of(tmp_path: Any):
    dirs = _unserved(tmp_path)
    refused = keys(dirs, "create", "one", "--team", "nowhere")
    assert refused.returncode == 1
    assert "no team named 'nowhere' (hxgw teams create nowhere makes one)" in refused.stderr


def test_a_team_may_not_take_a_keys_file_team_s_name(tmp_path: Any):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("teams:\n  - {name: search, rpm: 5}\nkeys: []\n")
    dirs = _unserved(tmp_path, gateway={"auth": {"keys_file": str(keys_file)}})
    refused = teams(dirs, "create", "search", "--rpm", "9")
    assert refused.returncode == 1 and "the keys file has a team named 'search'" in refused.stderr
    assert _secret(dirs, "one", "--team", "search")  # a stored key may join the file's team


def test_create_and_update_print_the_team_with_its_keys_as_json(tmp_path: Any):
    dirs = _unserved(tmp_path)
    made = json.loads(teams(dirs, "create", "search", "--budget", "5", "--json").stdout)
    assert (made["name"], made["budget"], made["budget_period"], made["keys"]) == (
        "search", 5.0, "1d", [])
    _secret(dirs, "one", "--team", "search")
    changed = json.loads(teams(dirs, "update", "search", "--rpm", "9", "--json").stdout)
    assert (changed["rpm"], changed["keys"]) == (9, ["one"]) and "spent" not in changed


async def test_usage_totals_by_team_with_a_line_for_keys_in_none(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=PRICED)
    teams(gateway, "create", "search", "--rpm", "100")
    one, two = _secret(gateway, "one", "--team", "search"), _secret(gateway, "two")
    await _within_a_second(lambda: _status_is(client, gateway, one, 200))
    await _within_a_second(lambda: _status_is(client, gateway, two, 200))
    gateway.stop()  # its ledger rows are written before it exits
    assert {row["key_name"]: row["team"] for row in ledger_rows(gateway)} == {
        "one": "search", "two": None}
    by_team = usage(gateway.config_dir.parent / f"state-{gateway.config_dir.name}",
                    "--by", "team", "--format", "json")
    assert [(line["team"], line["requests"]) for line in json.loads(by_team.stdout)["rows"]] == [
        (None, 1), ("search", 1)]
    table = usage(gateway.config_dir.parent / f"state-{gateway.config_dir.name}",
                  "--team", "search", "--by", "key")
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == ["one"]


async def test_a_stored_key_s_batch_is_billed_to_the_team_the_key_is_in_when_it_ends(
    start_gateway: StartGateway,
):
    gateway = await start_gateway(models=PRICED)
    teams(gateway, "create", "search", "--rpm", "100")
    secret = _secret(gateway, "one", "--team", "search")
    batch_id = await ended_batch_of(gateway, secret)
    gateway.stop()  # its ledger rows are written before it exits
    [row] = [r for r in ledger_rows(gateway) if r["request_id"] == "usage-of-" + batch_id]
    assert (row["key_name"], row["team"]) == ("one", "search")


def test_no_team_may_be_called_none_which_takes_a_key_out_of_its_team(tmp_path: Any):
    refused = teams(_unserved(tmp_path), "create", "none", "--rpm", "5")
    assert refused.returncode == 2 and "'none' takes a key out of its team" in refused.stderr


def test_a_stored_key_may_join_a_keys_file_team_whose_name_hxgw_teams_would_not_make(
    tmp_path: Any,
):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("teams:\n  - {name: search/eu, rpm: 5}\nkeys: []\n")
    dirs = _unserved(tmp_path, gateway={"auth": {"keys_file": str(keys_file)}})
    made = json.loads(keys(dirs, "create", "one", "--team", "search/eu", "--json").stdout)
    assert made["team"] == "search/eu"


def test_list_says_a_stored_team_the_keys_file_hides(tmp_path: Any):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("teams:\n  - {name: search, rpm: 5}\nkeys: []\n")
    dirs = _unserved(tmp_path)
    teams(dirs, "create", "search", "--budget", "9")
    hidden = _unserved(tmp_path / "later", gateway={"auth": {"keys_file": str(keys_file)}})
    hidden.config_dir.parent.joinpath("state").symlink_to(dirs.config_dir.parent / "state")
    rows = json.loads(teams(hidden, "list", "--json").stdout)
    assert [(row["name"], row["source"]) for row in rows] == [
        ("search", "store (hidden by the keys file)"), ("search", "keys file")]


def test_list_leaves_spend_out_of_a_ledger_no_gateway_has_migrated_yet(tmp_path: Any):
    dirs = _unserved(tmp_path)
    with open_database(None, tmp_path / "state").connect() as connection:
        migrate(connection, MIGRATIONS[:7])  # as an older gateway left it
    teams(dirs, "create", "search", "--budget", "5")
    listed = teams(dirs, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "schema version 7" in listed.stderr
    assert json.loads(listed.stdout)[0]["spent"] is None


def test_a_key_s_json_says_the_limits_its_end_users_get_from_the_config(tmp_path: Any):
    dirs = _unserved(tmp_path, gateway={"auth": {"per_user": {"rpm": 20}}})
    made = json.loads(keys(dirs, "create", "one", "--json").stdout)
    changed = json.loads(keys(dirs, "update", "one", "--rpm", "3", "--json").stdout)
    for said in (made, changed):
        assert said["per_user"]["rpm"] == 20 and said["per_user_default"] is True


async def test_list_says_a_keys_file_team_with_the_file_s_keys_and_the_store_s_and_its_spend(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path: Path
):
    secret = new_key("sk-filed")
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"teams": [{"name": "search", "budget": 5}],
                                         "keys": [{"name": "filed", "key": secret,
                                                   "team": "search"}]}))
    keys_file.chmod(0o600)
    gateway = await start_gateway(models=PRICED, gateway={"auth": {"keys_file": str(keys_file)}})
    assert await _status(client, gateway, secret) == 200
    gateway.stop()  # its ledger rows are written before it exits
    _secret(gateway, "stored", "--team", "search")
    (row,) = json.loads(teams(gateway, "list", "--json").stdout)
    assert (row["name"], row["source"], row["budget"], row["keys"]) == (
        "search", "keys file", 5.0, ["filed", "stored"])
    assert row["spent"] > 0


async def test_the_list_table_says_each_team_s_limits_spend_what_is_left_and_keys(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(models=PRICED)
    teams(gateway, "create", "search", "--budget", "0.5")
    secret = _secret(gateway, "one", "--team", "search")
    await _within_a_second(lambda: _status_is(client, gateway, secret, 200))
    gateway.stop()  # its ledger rows are written before it exits
    (row,) = json.loads(teams(gateway, "list", "--json").stdout)
    lines = teams(gateway, "list").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "LIMITS", "GROUPS", "SPENT", "LEFT", "KEYS"]
    assert lines[1].split() == ["search", "store", "budget", "0.50/1d", "all",
                                money(row["spent"]), money(0.5 - row["spent"]), "one"]


def test_list_without_teams_says_how_to_make_one_and_makes_no_store(tmp_path: Path):
    dirs = _unserved(tmp_path)
    listed = teams(dirs, "list")
    assert listed.returncode == 0
    assert listed.stdout.strip() == "no teams yet: hxgw teams create NAME --budget 100"
    assert not (tmp_path / "state").exists()


def test_a_team_made_without_limits_is_said_to_limit_nothing_yet(tmp_path: Path):
    made = teams(_unserved(tmp_path), "create", "later")
    assert made.returncode == 0 and "note: later limits nothing yet" in made.stderr


async def test_a_team_s_groups_keep_its_keys_to_them_within_a_second_without_a_reload(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    assert teams(gateway, "create", "search", "--groups", "solo").returncode == 0
    secret = _secret(gateway, "one", "--team", "search")
    await _within_a_second(lambda: _status_is(client, gateway, secret, 403))  # chat: not solo
    assert teams(gateway, "update", "search", "--groups", "all").returncode == 0
    await _within_a_second(lambda: _status_is(client, gateway, secret, 200))


def test_a_team_s_groups_are_listed_and_set_back_to_all(tmp_path: Any):
    dirs = _unserved(tmp_path)
    made = json.loads(teams(dirs, "create", "search", "--groups", "solo,chat", "--json").stdout)
    assert made["groups"] == ["chat", "solo"]
    lines = teams(dirs, "list").stdout.splitlines()
    assert lines[1].split()[:4] == ["search", "store", "-", "chat,solo"]
    changed = json.loads(teams(dirs, "update", "search", "--groups", "all", "--json").stdout)
    assert changed["groups"] is None


def test_list_says_a_keys_file_team_s_groups(tmp_path: Any):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("teams:\n  - {name: search, groups: [solo, chat]}\nkeys: []\n")
    dirs = _unserved(tmp_path, gateway={"auth": {"keys_file": str(keys_file)}})
    [row] = json.loads(teams(dirs, "list", "--json").stdout)
    assert (row["source"], row["groups"]) == ("keys file", ["chat", "solo"])


def test_a_team_made_with_groups_alone_is_no_team_that_limits_nothing(tmp_path: Any):
    made = teams(_unserved(tmp_path), "create", "search", "--groups", "solo")
    assert made.returncode == 0 and "limits nothing" not in made.stderr


def test_a_team_may_not_keep_its_keys_to_a_group_the_config_lacks(tmp_path: Any):
    refused = teams(_unserved(tmp_path), "create", "search", "--groups", "chta")
    assert refused.returncode == 1
    assert "no group named 'chta' (did you mean 'chat'?) in the config" in refused.stderr


async def test_a_reload_that_renames_a_stored_team_s_group_warns_of_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway()
    teams(gateway, "create", "search", "--groups", "solo")
    secret = _secret(gateway, "one", "--team", "search")
    await _within_a_second(lambda: _status_is(client, gateway, secret, 403))  # read: chat is not solo
    warned = await reloaded_without_solo(gateway, "a team keeps its keys to groups the config lacks")
    assert len(warned) == 1 and "team=search groups=solo" in warned[0]


def test_keeping_a_team_to_groups_none_of_its_key_s_own_names_says_so(tmp_path: Any):
    dirs = _unserved(tmp_path)
    teams(dirs, "create", "search", "--rpm", "5")
    _secret(dirs, "one", "--team", "search", "--groups", "chat")
    _secret(dirs, "two", "--team", "search")
    changed = teams(dirs, "update", "search", "--groups", "solo")
    assert changed.returncode == 0
    assert ("note: keys of the team that now reach no group (their own groups name none of"
            " its): one (hxgw keys update one --groups ...)") in changed.stderr


def test_check_config_warns_of_a_stored_team_kept_to_a_group_the_config_renamed(tmp_path: Any):
    dirs = _unserved(tmp_path)
    teams(dirs, "create", "search", "--groups", "solo")
    rename_solo(dirs.config_dir)
    checked = check_config(dirs)
    assert checked.returncode == 0, checked.stderr
    assert ("warning: the stored team 'search' keeps its keys to groups the config lacks"
            " (solo): hxgw teams update search --groups ...") in checked.stdout
