"""Limits a key gives each of its end users (`per_user`), through the real gateway: the
end user is who the request says it is for (`user`, `safety_identifier`, Anthropic's
`metadata.user_id`), each counted apart, beside the key's own limits."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from multidict import CIMultiDict

from tests import one_gateway
from tests.conftest import StartGateway
from tests.e2e.test_alert_metrics import _sample, _scrape
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, ledger_rows, new_key, wait_for

upstream = one_gateway.upstream
PRICED = [dict(m, price={"input_per_mtok": 1000, "output_per_mtok": 1000})
          for m in DEFAULT_MODELS]
"""$0.001 a token: the fake's answers cost a few cents each."""
KEYS: dict[str, dict[str, Any]] = {
    "each": {"per_user": {"rpm": 2}},
    "tighter": {"rpm": 100, "per_user": {"rpm": 3}},
    "one-slot": {"max_parallel": 1, "per_user": {"rpm": 1}},
    "priced": {"per_user": {"budget": 0.1}},
    "paired": {"budget": 0.1, "per_user": {"budget": 1.0}},
    "gauged": {"budget": 5.0, "per_user": {"rpm": 100}},
    "tied": {"rpm": 4, "per_user": {"rpm": 2}},
    "paced": {"rpm": 100, "per_user": {"rpm": 3}},
    "both-gauged": {"budget": 5.0, "per_user": {"budget": 0.05}},
}
"""The keys file of the module's gateway: each test has keys of its own."""


@pytest.fixture(scope="module")
async def keyed(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[tuple[Gateway, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("end-users")
    secrets = {name: new_key(f"sk-{name}") for name in KEYS}
    keys = directory / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": name, "key": secrets[name], **limits} for name, limits in KEYS.items()]}))
    keys.chmod(0o600)
    async with one_gateway.serving_shared(directory, module_upstream[1], models=PRICED,
                                          auth={"keys_file": str(keys)}) as shared:
        yield shared, secrets


class App:
    """One key of the module's gateway, posting chats for its end users."""

    def __init__(self, gateway: Gateway, secret: str, client: aiohttp.ClientSession) -> None:
        self.gateway, self.secret, self.client = gateway, secret, client

    async def post(self, path: str = "/v1/chat/completions", **body: Any
                   ) -> tuple[int, CIMultiDict[str], dict[str, Any]]:
        body.setdefault("model", "chat")
        body.setdefault("messages", [{"role": "user", "content": "hi"}])
        headers = {"Authorization": f"Bearer {self.secret}", "anthropic-version": "2023-06-01"}
        async with self.client.post(self.gateway.url + path, json=body,
                                    headers=headers) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.json()

    async def statuses(self, times: int, **body: Any) -> list[int]:
        return [(await self.post(**body))[0] for _ in range(times)]


@pytest.fixture
def apps(
    keyed: tuple[Gateway, dict[str, str]], upstream: tuple[FakeUpstream, str],
    client: aiohttp.ClientSession,
) -> Iterator[dict[str, App]]:
    gateway, secrets = keyed
    gateway.begin_test()
    yield {name: App(gateway, secret, client) for name, secret in secrets.items()}


async def test_each_end_user_gets_the_per_user_requests_per_minute_of_its_own(
    apps: dict[str, App],
):
    app = apps["each"]
    assert await app.statuses(3, user="alice") == [200, 200, 429]
    assert await app.statuses(2, user="bob") == [200, 200]


async def test_an_end_user_s_refusal_says_whose_limit_it_is(apps: dict[str, App]):
    app = apps["each"]
    await app.statuses(2, user="carol")
    status, headers, body = await app.post(user="carol")
    assert (status, body["error"]["code"]) == (429, "rate_limit_exceeded")
    assert "each end user of this key" in body["error"]["message"]
    assert "'carol'" in body["error"]["message"]
    assert int(headers["retry-after"]) >= 59


async def test_a_request_that_names_no_end_user_is_held_to_the_key_s_limits_alone(
    apps: dict[str, App],
):
    assert await apps["each"].statuses(4) == [200] * 4


async def test_the_end_user_is_read_from_safety_identifier_and_anthropic_s_metadata(
    apps: dict[str, App],
):
    app = apps["each"]
    assert await app.statuses(2, safety_identifier="dave") == [200, 200]
    assert (await app.post(user="dave"))[0] == 429
    said = {"metadata": {"user_id": "erin"}, "max_tokens": 10}
    statuses = [(await app.post("/v1/messages", **said))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_the_answer_s_headers_say_the_tighter_of_the_key_s_and_the_end_user_s(
    apps: dict[str, App],
):
    app = apps["tighter"]
    _, headers, _ = await app.post(user="frank")
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "2"
    _, headers, _ = await app.post()  # no end user: the key's own
    assert headers["x-ratelimit-limit-requests"] == "100"
    assert headers["x-ratelimit-remaining-requests"] == "98"


async def test_anthropic_s_own_headers_say_the_tighter_of_the_key_s_and_the_end_user_s(apps: dict[str, App]):
    said = {"metadata": {"user_id": "xena"}, "max_tokens": 10}
    _, headers, _ = await apps["paced"].post("/v1/messages", **said)
    assert headers["anthropic-ratelimit-requests-limit"] == "3"
    assert headers["anthropic-ratelimit-requests-remaining"] == "2"


async def test_where_the_key_and_the_end_user_have_as_many_left_the_key_s_headers_are_said(
    apps: dict[str, App],
):
    app = apps["tied"]
    assert await app.statuses(2, user="uma") == [200, 200]
    _, headers, _ = await app.post(user="victor")  # one left for either
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-limit-requests"] == "4"


async def test_a_request_the_key_s_own_limit_refuses_does_not_count_for_its_end_user(
    apps: dict[str, App], upstream: tuple[FakeUpstream, str],
):
    # The key takes one request at once, its end users one a minute each: grace's request
    # refused while another holds the key's slot must not spend grace's one.
    fake, _ = upstream
    held = fake.behave("m-alpha", gate=asyncio.Event())
    app = apps["one-slot"]
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "user": "heidi"}
    async with app.client.post(app.gateway.url + "/v1/chat/completions", json=chat,
                               headers={"Authorization": f"Bearer {app.secret}"}) as stream:
        await stream.content.readuntil(b"\n\n")  # under way: the key's one slot is taken
        status, _, body = await app.post(user="grace")
        assert status == 429 and "at once" in body["error"]["message"]
        assert "end user" not in body["error"]["message"]
        assert held.gate is not None
        held.gate.set()
        await stream.read()
    assert (await app.post(user="grace"))[0] == 200


async def test_each_end_user_has_a_budget_of_its_own(apps: dict[str, App]):
    app = apps["priced"]
    assert (await app.post(user="ivan", max_tokens=10))[0] == 200
    # Its estimate, about 30 prompt tokens and 69, fits the budget alone, not beside the
    # first request's spend.
    status, _, body = await app.post(user="ivan", max_tokens=69)
    assert (status, body["error"]["code"]) == (429, "insufficient_quota")
    assert "the end user's budget" in body["error"]["message"]
    assert (await app.post(user="judy", max_tokens=10))[0] == 200


async def test_an_end_user_whose_prompt_alone_exceeds_its_budget_is_told_to_shorten_it(
    apps: dict[str, App],
):
    long = [{"role": "user", "content": "word " * 400}]  # some 400 tokens: 0.4 of 0.1
    status, _, body = await apps["priced"].post(user="walter", messages=long, max_tokens=1)
    assert status == 429
    assert "send a shorter prompt" in body["error"]["message"]


async def test_the_key_s_own_budget_still_holds_over_all_its_end_users(apps: dict[str, App]):
    app = apps["paired"]
    assert (await app.post(user="ken", max_tokens=10))[0] == 200
    status, _, body = await app.post(user="lena", max_tokens=69)
    assert (status, body["error"]["code"]) == (429, "insufficient_quota")
    assert "the key's budget" in body["error"]["message"]


async def test_the_key_s_budget_gauge_counts_the_requests_that_name_an_end_user(
    apps: dict[str, App], keyed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession,
):
    app = apps["gauged"]
    for user in ("rupert", "sybil"):
        assert (await app.post(user=user, max_tokens=10))[0] == 200
    text = await _scrape(keyed[0], client)
    spent = _sample(text, "hxgw_key_budget_spent", key="gauged")
    assert spent is not None and spent > 0
    assert spent == pytest.approx(_sample(text, "hxgw_key_spend_total", key="gauged"))


async def test_an_end_user_s_budget_refusing_leaves_the_key_s_budget_gauge_the_key_s(
    apps: dict[str, App], keyed: tuple[Gateway, dict[str, str]], client: aiohttp.ClientSession,
):
    app = apps["both-gauged"]
    assert (await app.post(user="zack", max_tokens=10))[0] == 200
    statuses = [(await app.post(user="yuri", max_tokens=10))[0] for _ in range(5)]
    assert statuses[0] == 200 and statuses[-1] == 429
    text = await _scrape(keyed[0], client)
    spent = _sample(text, "hxgw_key_budget_spent", key="both-gauged")
    assert spent == pytest.approx(_sample(text, "hxgw_key_spend_total", key="both-gauged"))


async def test_end_users_spend_is_in_the_ledger_under_the_key(
    apps: dict[str, App], keyed: tuple[Gateway, dict[str, str]],
):
    app = apps["priced"]
    assert (await app.post(user="mallory", max_tokens=10))[0] == 200
    gateway, _ = keyed
    await wait_for(lambda: any(r["end_user"] == "mallory" for r in ledger_rows(gateway)))
    rows = [r for r in ledger_rows(gateway) if r["end_user"] == "mallory"]
    assert [(r["key_name"], r["status"]) for r in rows] == [("priced", 200)]
    assert rows[0]["cost"] > 0


async def test_an_end_user_with_a_budget_may_not_start_a_background_response(
    apps: dict[str, App], upstream: tuple[FakeUpstream, str],
):
    # Its usage is read later, by a call that bills nothing: the budget could not count it.
    status, _, body = await apps["priced"].post(
        "/v1/responses", model="chat", input="hi", background=True, user="olivia")
    assert (status, body["error"]["param"]) == (403, "background")
    assert upstream[0].requests == []


async def test_a_restart_keeps_what_each_end_user_has_spent_this_period(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
):
    # Each such request reserves 0.036 (26 + 10 tokens) and costs 0.009 (9 tokens): a
    # second one fits in 0.04 only if the first is forgotten.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": "app", "key": secret, "per_user": {"budget": 0.04}}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(models=PRICED, gateway={"auth": {"keys_file": str(keys)}})
    app = App(gateway, secret, client)
    assert (await app.post(user="peggy", max_tokens=10))[0] == 200
    gateway.stop()  # its ledger rows are written before it exits
    await gateway.start().wait_ready()
    status, _, body = await app.post(user="peggy", max_tokens=10)
    assert (status, body["error"]["code"]) == (429, "insufficient_quota")
    assert (await app.post(user="quinn", max_tokens=10))[0] == 200


async def test_an_end_user_s_refusal_is_counted_under_its_key_in_the_metrics(
    apps: dict[str, App], keyed: tuple[Gateway, dict[str, str]],
    client: aiohttp.ClientSession,
):
    gateway, _ = keyed

    async def refused() -> float:
        async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
            text = await resp.text()
        found = re.search(r'^hxgw_key_refused_total\{key="each",outcome="rate_limit_exceeded"\}'
                          r" (\S+)$", text, re.M)
        return float(found[1]) if found else 0.0

    before = await refused()
    assert await apps["each"].statuses(3, user="rupert") == [200, 200, 429]
    assert await refused() == before + 1
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        assert "rupert" not in await resp.text()  # no series of its own
