"""Teams, through the real gateway: keys of the keys file that share limits, each of
their requests held to the team's as well as its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests import one_gateway
from tests.conftest import StartGateway
from tests.e2e.test_alert_metrics import _sample, _scrape
from tests.e2e.test_end_user_limits import PRICED, App
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, new_key

upstream = one_gateway.upstream
TEAMS = [
    {"name": "paced", "rpm": 3},
    {"name": "roomy", "rpm": 100},
    {"name": "priced", "budget": 0.1},
    {"name": "headed", "rpm": 3},
    {"name": "gauged", "budget": 50},
    {"name": "refusing", "budget": 0.1},
    {"name": "both", "rpm": 1},
    {"name": "queued", "budget": 5},
    {"name": "counted", "rpm": 2},
    {"name": "grouped", "groups": ["solo", "emb"]},
    {"name": "quota", "budget": 0.1},
]
KEYS: dict[str, dict[str, Any]] = {
    "paced-a": {"team": "paced"},
    "paced-b": {"team": "paced"},
    "roomy-own": {"team": "roomy", "rpm": 2},
    "priced-a": {"team": "priced"},
    "priced-b": {"team": "priced"},
    "headed-a": {"team": "headed"},
    "gauged-own": {"team": "gauged", "budget": 5},
    "gauged-other": {"team": "gauged"},
    "refused-own": {"team": "refusing", "rpm": 2},
    "both-own": {"team": "both", "rpm": 1},
    "queued-own": {"team": "queued", "rpm": 100},
    "counted-own": {"team": "counted", "rpm": 1},
    "counted-a": {"team": "counted"},
    "grouped-a": {"team": "grouped"},
    "grouped-own": {"team": "grouped", "groups": ["chat", "emb"]},
    "quota-a": {"team": "quota"},
    "alone": {},
}
"""Each test has keys (and a team) of its own."""


def _keys_file(path: Path, secrets: dict[str, str], keys: dict[str, dict[str, Any]],
               teams: list[dict[str, Any]]) -> str:
    path.write_text(yaml.safe_dump({"teams": teams, "keys": [
        {"name": name, "key": secrets[name], **settings} for name, settings in keys.items()]}))
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
async def teamed(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[tuple[Gateway, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("teams")
    secrets = {name: new_key(f"sk-{name}") for name in KEYS}
    keys = _keys_file(directory / "keys.yaml", secrets, KEYS, TEAMS)
    async with one_gateway.serving_shared(directory, module_upstream[1], models=PRICED,
                                          auth={"keys_file": keys}) as shared:
        yield shared, secrets


@pytest.fixture
def apps(
    teamed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession
) -> dict[str, App]:
    gateway, secrets = teamed
    gateway.begin_test()
    return {name: App(gateway, secret, client) for name, secret in secrets.items()}


async def test_a_team_s_requests_per_minute_are_shared_by_its_keys(apps: dict[str, App]):
    assert await apps["paced-a"].statuses(2) == [200, 200]
    assert await apps["paced-b"].statuses(2) == [200, 429]
    assert await apps["paced-a"].statuses(1) == [429]
    assert await apps["alone"].statuses(4) == [200] * 4


async def test_a_team_s_refusal_names_the_team(apps: dict[str, App]):
    await apps["paced-a"].statuses(3)
    status, headers, body = await apps["paced-b"].post()
    assert (status, body["error"]["code"]) == (429, "rate_limit_exceeded")
    assert "(a limit of the team 'paced', shared by all its keys)" in body["error"]["message"]
    assert int(headers["retry-after"]) >= 59


async def test_a_key_s_own_limit_still_holds_inside_its_team(apps: dict[str, App]):
    assert await apps["roomy-own"].statuses(3) == [200, 200, 429]


async def test_the_answer_s_headers_say_the_tighter_of_the_key_s_and_the_team_s(
    apps: dict[str, App],
):
    _, headers, _ = await apps["roomy-own"].post()  # its own 2, against the team's 100
    assert headers["x-ratelimit-limit-requests"] == "2"
    _, headers, _ = await apps["headed-a"].post()  # the key has no limit: the team's
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == (
        "3", "2")


async def test_a_team_s_budget_is_spent_by_all_its_keys(apps: dict[str, App]):
    assert (await apps["priced-a"].post(max_tokens=10))[0] == 200
    # Its estimate (some 20-26 prompt tokens and 72) fits the budget alone, not beside
    # what the other key spent (9 tokens).
    status, _, body = await apps["priced-b"].post(max_tokens=72)
    assert (status, body["error"]["code"]) == (429, "insufficient_quota")
    assert "the team's budget" in body["error"]["message"]


async def test_a_key_s_budget_gauge_says_its_own_spend_and_the_team_s_the_team_s(
    apps: dict[str, App], teamed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession,
):
    for name in ("gauged-other", "gauged-other", "gauged-own"):  # the team has spent before
        assert (await apps[name].post(max_tokens=10))[0] == 200
    text = await _scrape(teamed[0], client)
    own = _sample(text, "hxgw_key_spend_total", key="gauged-own")
    other = _sample(text, "hxgw_key_spend_total", key="gauged-other")
    assert own is not None and other is not None and own > 0
    assert _sample(text, "hxgw_key_budget_spent", key="gauged-own") == pytest.approx(own)
    assert _sample(text, "hxgw_team_budget", team="gauged") == 50
    assert _sample(text, "hxgw_team_budget_spent", team="gauged") == pytest.approx(own + other)


async def test_a_team_s_refusals_are_counted_under_it_and_a_key_s_own_are_not(
    apps: dict[str, App], teamed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession,
):
    refused = {"team": "counted", "outcome": "rate_limit_exceeded"}
    assert await apps["counted-own"].statuses(2) == [200, 429]  # its own limit, of 1
    text = await _scrape(teamed[0], client)
    assert _sample(text, "hxgw_team_refused_total", **refused) == 0
    assert _sample(text, "hxgw_team_refused_total", team="counted",
                   outcome="insufficient_quota") == 0
    assert await apps["counted-a"].statuses(2) == [200, 429]  # the team's 2 are spent
    text = await _scrape(teamed[0], client)
    assert _sample(text, "hxgw_team_refused_total", **refused) == 1
    assert _sample(text, "hxgw_key_refused_total", key="counted-a",
                   outcome="rate_limit_exceeded") == 1


async def test_a_key_in_a_team_with_a_budget_may_not_start_a_background_response(
    apps: dict[str, App],
):
    status, _, body = await apps["priced-a"].post(
        "/v1/responses", model="chat", input="hi", background=True, messages=None)
    assert (status, body["error"]["code"]) == (403, "background_not_allowed")


async def test_a_restart_keeps_what_a_team_s_keys_spent_this_period(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
):
    # Each request reserves 0.036 (26 + 10 tokens) and costs 0.009 (9 tokens): a second
    # one fits in 0.04 only if the first is forgotten.
    secrets = {"one": new_key("sk-one"), "two": new_key("sk-two")}
    keys = _keys_file(tmp_path / "keys.yaml", secrets, {"one": {"team": "t"}, "two": {"team": "t"}},
                      [{"name": "t", "budget": 0.04}])
    gateway = await start_gateway(models=PRICED, gateway={"auth": {"keys_file": keys}})
    assert (await App(gateway, secrets["one"], client).post(max_tokens=10))[0] == 200
    gateway.stop()  # its ledger rows are written before it exits
    await gateway.start().wait_ready()
    status, _, body = await App(gateway, secrets["two"], client).post(max_tokens=10)
    assert (status, body["error"]["code"]) == (429, "insufficient_quota")


async def test_a_request_its_team_refuses_leaves_the_key_s_own_limits_as_they_were(
    apps: dict[str, App],
):
    # Each estimate (some 220 tokens, 0.22) is past the team's budget: the key's own
    # requests per minute reserved for it first are given back.
    for _ in range(3):
        status, _, body = await apps["refused-own"].post(max_tokens=200)
        assert (status, body["error"]["code"]) == (429, "insufficient_quota")
    assert await apps["refused-own"].statuses(2, max_tokens=10) == [200, 200]


async def test_a_request_both_the_key_s_limit_and_its_team_s_refuse_is_refused_by_the_key_s(
    apps: dict[str, App],
):
    assert await apps["both-own"].statuses(1) == [200]
    status, _, body = await apps["both-own"].post()
    assert status == 429 and "the team" not in body["error"]["message"]


async def test_a_key_with_limits_of_its_own_in_a_team_with_a_budget_may_not_start_a_background_response(
    apps: dict[str, App],
):
    status, _, body = await apps["queued-own"].post(
        "/v1/responses", model="chat", input="hi", background=True, messages=None)
    assert (status, body["error"]["code"]) == (403, "background_not_allowed")


async def test_a_team_s_groups_keep_its_keys_to_them(apps: dict[str, App]):
    assert (await apps["grouped-a"].post(model="solo"))[0] == 200
    status, _, body = await apps["grouped-a"].post(model="chat")
    assert (status, body["error"]["message"]) == (
        403, "key 'grouped-a' may not use group 'chat' (its groups: emb, solo)")


async def test_a_key_in_a_team_with_groups_reaches_those_both_name(apps: dict[str, App]):
    # Its own groups are chat and emb, its team's solo and emb: emb alone.
    assert [(await apps["grouped-own"].post(model=model))[0] for model in ("chat", "solo")] == [
        403, 403]
    assert (await apps["grouped-own"].post("/v1/embeddings", model="emb", input="hi",
                                           messages=None))[0] == 200
    status, _, body = await apps["grouped-own"].post(model="beta")  # a model of chat
    assert (status, body["error"]["message"]) == (403, "key 'grouped-own' may not use model 'beta'")


async def test_a_team_with_groups_alone_holds_its_keys_to_no_limit_of_its_own(
    apps: dict[str, App], teamed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession,
):
    assert await apps["grouped-a"].statuses(3, model="solo") == [200] * 3
    # No reservation was made against it: its limits' figures never began.
    text = await _scrape(teamed[0], client)
    assert _sample(text, "hxgw_team_refused_total", team="grouped",
                   outcome="rate_limit_exceeded") is None


async def test_a_key_kept_to_groups_by_its_team_alone_may_not_open_an_operator_route(
    teamed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession,
):
    gateway, secrets = teamed
    async with client.get(gateway.url + "/status.json",
                          headers={"Authorization": f"Bearer {secrets['grouped-a']}"}) as resp:
        assert resp.status == 403
        assert "its own or its team's" in (await resp.json())["error"]["message"]


async def test_a_team_s_budget_refusal_is_counted_under_it_as_insufficient_quota(
    apps: dict[str, App], teamed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession,
):
    status, _, body = await apps["quota-a"].post(max_tokens=200)  # some 0.22: past its 0.1
    assert (status, body["error"]["code"]) == (429, "insufficient_quota")
    text = await _scrape(teamed[0], client)
    assert _sample(text, "hxgw_team_refused_total", team="quota",
                   outcome="insufficient_quota") == 1
    assert _sample(text, "hxgw_team_refused_total", team="quota",
                   outcome="rate_limit_exceeded") == 0
