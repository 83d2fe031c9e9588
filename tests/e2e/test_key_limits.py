"""A key's own limits through the real gateway: requests per minute, requests at once
and a budget, with OpenAI's 429s and headers, and usage billed however a request ends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import signal
import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import yaml
from multidict import CIMultiDict

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, ledger_rows, new_key, poll, wait_for
from tests.postgres import Postgres, own_postgres  # noqa: F401 -- a fixture

PRICED = [dict(m, price={"input_per_mtok": 1000, "output_per_mtok": 1000})
          for m in DEFAULT_MODELS]
"""$0.001 a token: the fake's answers cost a few cents each."""


async def _start(start_gateway: StartGateway, tmp_path: Path, **limits: Any) -> tuple[Gateway, str]:
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, **limits}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(models=PRICED, gateway={"auth": {"keys_file": str(keys)}})
    return gateway, secret


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **extra}


async def _post(client: aiohttp.ClientSession, gateway: Gateway, secret: str,
                **extra: Any) -> tuple[int, CIMultiDict[str], dict[str, Any]]:
    async with client.post(gateway.url + "/v1/chat/completions", json=_chat(**extra),
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.json()


async def _spend(client: aiohttp.ClientSession, gateway: Gateway) -> float:
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        text = await resp.text()
    found = re.search(r'^hxgw_key_spend_total\{key="app"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


async def test_a_key_gets_exactly_its_requests_per_minute_then_429(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, secret = await _start(start_gateway, tmp_path, rpm=3)
    remaining = []
    for _ in range(3):
        status, headers, _ = await _post(client, gateway, secret)
        assert status == 200
        assert headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    status, headers, body = await _post(client, gateway, secret)
    assert status == 429
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert int(headers["retry-after"]) >= 59
    assert headers["x-ratelimit-remaining-requests"] == "0"


async def test_a_limited_key_s_answer_carries_its_own_rate_limits_and_none_of_the_upstream_s(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream
):
    # The gateway's account's figures beside the key's read as the key's, and told one
    # client of the others' use.
    fake.behave("m-alpha", headers={"x-ratelimit-limit-tokens": "2000000",
                                    "x-ratelimit-remaining-tokens": "1999000",
                                    "anthropic-ratelimit-input-tokens-limit": "400000"})
    gateway, secret = await _start(start_gateway, tmp_path, rpm=5)
    status, headers, _ = await _post(client, gateway, secret)
    assert status == 200 and headers["x-ratelimit-limit-requests"] == "5"
    assert not [name for name in headers if name.lower().endswith(("-tokens", "-tokens-limit"))]


async def test_an_answer_the_gateway_makes_itself_says_what_the_key_has_left(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream
):
    gateway, secret = await _start(start_gateway, tmp_path, rpm=5)
    fake.behave("m-alpha", status=500)
    fake.behave("m-beta", status=503)
    status, headers, _ = await _post(client, gateway, secret)  # both fail: the gateway's 502
    assert status == 502 and headers["x-ratelimit-remaining-requests"] == "4"
    fake.behave("m-gamma", status=500)
    status, headers, _ = await _post(client, gateway, secret, model="solo")  # gamma's own 500
    assert status == 500 and headers["x-ratelimit-remaining-requests"] == "3"


async def test_on_anthropic_s_routes_a_key_s_limits_are_said_in_anthropic_s_headers_too(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, secret = await _start(start_gateway, tmp_path, rpm=2, tpm=10_000)
    body = {"model": "chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    answers = []
    for _ in range(3):
        async with client.post(gateway.url + "/v1/messages", json=body,
                               headers={"x-api-key": secret}) as resp:
            answers.append((resp.status, resp.headers.copy()))
    (_, first), (_, second), (refused, last) = answers
    assert (first["anthropic-ratelimit-requests-limit"],
            first["anthropic-ratelimit-requests-remaining"],
            second["anthropic-ratelimit-requests-remaining"]) == ("2", "1", "0")
    assert first["anthropic-ratelimit-tokens-limit"] == "10000"
    assert int(first["anthropic-ratelimit-tokens-remaining"]) < 10_000
    assert refused == 429 and last["anthropic-ratelimit-requests-remaining"] == "0"
    whole_at = datetime.fromisoformat(last["anthropic-ratelimit-requests-reset"])
    waited = whole_at - parsedate_to_datetime(first["Date"])
    assert 55 <= waited.total_seconds() <= 62
    # Not on OpenAI's routes, where no client reads them.
    status, headers, _ = await _post(client, gateway, secret)
    assert status == 429 and "anthropic-ratelimit-requests-limit" not in headers


async def test_counting_tokens_uses_none_of_a_keys_tokens_and_has_requests_of_its_own(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # As at Anthropic, where counting is limited apart from messages: an app that counts
    # before each message had half the messages per minute the operator set.
    gateway, secret = await _start(start_gateway, tmp_path, tpm=1000, rpm=3)
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    answers = []
    for _ in range(4):
        async with client.post(gateway.url + "/v1/messages/count_tokens", json=body,
                               headers={"x-api-key": secret}) as resp:
            answers.append((resp.status, resp.headers.get("x-ratelimit-remaining-requests")))
    assert answers == [(200, "2"), (200, "1"), (200, "0"), (429, "0")]
    status, headers, _ = await _post(client, gateway, secret)
    assert status == 200 and headers["x-ratelimit-remaining-requests"] == "2"
    await wait_for(lambda: len(ledger_rows(gateway)) == 5, timeout=10)
    counted = [r for r in ledger_rows(gateway) if r["route"] == "messages_count_tokens"]
    assert {(r["status"], r["prompt_tokens"], r["completion_tokens"], r["cost"],
             r["usage_source"]) for r in counted} == {
        (200, 0, 0, 0.0, "none"), (429, 0, 0, 0.0, "none")}


async def test_the_master_key_has_no_limits_when_an_app_key_is_limited(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, secret = await _start(start_gateway, tmp_path, rpm=1)
    assert (await _post(client, gateway, secret))[0] == 200
    assert (await _post(client, gateway, secret))[0] == 429
    assert (await _post(client, gateway, gateway.key))[0] == 200


async def test_the_openai_sdk_raises_its_rate_limit_error_on_a_key_limit(
    start_gateway: StartGateway, tmp_path: Path
):
    gateway, secret = await _start(start_gateway, tmp_path, rpm=1)
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)
    await sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as raised:
        await sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "rate_limit_exceeded"
    await sdk.close()


async def test_a_spent_budget_refuses_with_insufficient_quota(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.05)
    status, _, _ = await _post(client, gateway, secret, max_tokens=10)
    assert status == 200
    status, _, body = await _post(client, gateway, secret, max_tokens=100)
    assert status == 429
    assert body["error"]["type"] == "insufficient_quota"
    assert body["error"]["code"] == "insufficient_quota"


async def test_a_max_tokens_written_as_a_float_or_a_string_is_reserved_at_its_value(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream
):
    # Upstreams that validate leniently (pydantic's int accepts 1000.0 and "1000") would
    # let the model write that much: reserved as the default 256, it would pass a budget
    # of 0.5.
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.5)
    for max_tokens in (1000.0, 1e12, "1000", " 1e4 ", "9" * 400):
        status, _, body = await _post(client, gateway, secret, max_tokens=max_tokens)
        assert (status, body["error"]["code"]) == (429, "insufficient_quota"), max_tokens
    assert fake.requests == []


async def test_the_largest_of_two_token_caps_is_reserved(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    # Which of the two an upstream obeys is its own affair: the budget holds either way.
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.5)
    status, _, body = await _post(
        client, gateway, secret, max_completion_tokens=1, max_tokens=1000
    )
    assert status == 429 and body["error"]["code"] == "insufficient_quota"
    assert fake.requests == []


async def test_an_inline_image_is_not_counted_as_text_against_the_tokens_per_minute(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # 600 KB of base64 would be 150k tokens as text: past the limit itself, for good.
    gateway, secret = await _start(start_gateway, tmp_path, tpm=100_000)
    photo = "data:image/jpeg;base64," + base64.b64encode(bytes(range(256)) * 1800).decode()
    content = [{"type": "text", "text": "what is this?"},
               {"type": "image_url", "image_url": {"url": photo}}]
    status, headers, _ = await _post(client, gateway, secret, max_tokens=100,
                                     messages=[{"role": "user", "content": content}])
    assert status == 200 and int(headers["x-ratelimit-remaining-tokens"]) > 50_000


async def test_a_request_without_max_tokens_reserves_its_model_s_max_output_tokens(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # 256 tokens reserved for an answer that may run to 4000 let a burst overspend.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, "tpm": 100_000}]}))
    keys.chmod(0o600)
    models = [dict(m, max_output_tokens=4000) for m in PRICED]
    gateway = await start_gateway(models=models, gateway={"auth": {"keys_file": str(keys)}})
    status, headers, _ = await _post(client, gateway, secret)
    assert status == 200
    assert 95_900 < int(headers["x-ratelimit-remaining-tokens"]) <= 96_000


async def test_a_request_for_several_choices_reserves_each_of_them(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    # n=10 choices of up to 100 tokens each may be billed 1000 tokens: 1.02 of a budget of
    # 0.5, though one choice (0.12) would fit.
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.5)
    status, _, body = await _post(client, gateway, secret, max_tokens=100, n=10)
    assert status == 429 and body["error"]["code"] == "insufficient_quota"
    assert fake.requests == []
    assert (await _post(client, gateway, secret, max_tokens=100, n=1))[0] == 200


async def test_a_completion_of_several_prompts_reserves_each_of_their_choices(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    # Ten prompts of up to 100 tokens each may be billed 1000 tokens, as n=10 may; a list
    # of token ids is one prompt.
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.5)
    statuses = []
    for prompt in (["hi"] * 10, [[1, 2]] * 10, [1, 2, 3]):
        async with client.post(gateway.url + "/v1/completions",
                               json={"model": "chat", "prompt": prompt, "max_tokens": 100},
                               headers={"Authorization": f"Bearer {secret}"}) as resp:
            statuses.append(resp.status)
    assert statuses == [429, 429, 200]


async def test_a_prompt_too_dear_for_the_budget_is_told_to_be_shorter_not_to_ask_for_less(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.05)
    long = {"role": "user", "content": "word " * 100}  # over 0.05 at $0.001 a token
    status, headers, body = await _post(client, gateway, secret, max_tokens=1,
                                        messages=[long])
    assert status == 429 and headers["x-should-retry"] == "false"
    assert "prompt alone may cost up to" in body["error"]["message"]
    assert body["error"]["message"].endswith("send a shorter prompt.")


async def test_the_sdks_do_not_sleep_until_a_budget_renews_they_raise_at_once(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # Anthropic's SDK sleeps whatever Retry-After says (hours here, to the period's end)
    # unless x-should-retry says no; with it, the one refusal is all the gateway sees.
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.05)
    assert (await _post(client, gateway, secret, max_tokens=10))[0] == 200
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=secret, max_retries=2)
    with pytest.raises(anthropic.RateLimitError) as raised:
        # Within the whole budget (a request over it gets no Retry-After), not what is left.
        await sdk.messages.create(model="chat", max_tokens=25,
                                  messages=[{"role": "user", "content": "hi"}])
    await sdk.close()
    assert "would exceed the key's budget" in raised.value.message, raised.value.message
    assert int(raised.value.response.headers["retry-after"]) > 60
    assert raised.value.response.headers["x-should-retry"] == "false"
    await wait_for(lambda: len(ledger_rows(gateway)) == 2, timeout=10)
    assert sorted(r["status"] for r in ledger_rows(gateway)) == [200, 429]


async def test_a_budget_held_by_requests_under_way_says_to_retry_soon_not_at_the_period_s_end(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    # Each such request reserves about 0.032 and costs 0.009: with one under way a
    # second does not fit in 0.05 yet, but will once the first ends. Told to wait for
    # the period's end, with x-should-retry: false, an app would give up on a key with
    # most of its budget left.
    held = fake.behave("m-alpha", gate=asyncio.Event())
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.05)
    async with client.post(gateway.url + "/v1/chat/completions",
                           json=_chat(stream=True, max_tokens=10),
                           headers={"Authorization": f"Bearer {secret}"}) as stream:
        await stream.content.readuntil(b"\n\n")
        status, headers, body = await _post(client, gateway, secret, max_tokens=10)
        # Not insufficient_quota, which code that reads it stops on for good.
        assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
        assert "under way" in body["error"]["message"]
        assert int(headers["retry-after"]) <= 60 and "x-should-retry" not in headers
        assert held.gate is not None
        held.gate.set()
        await stream.read()
    assert (await _post(client, gateway, secret, max_tokens=10))[0] == 200


async def test_a_restart_keeps_what_the_budget_period_has_spent(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # Each such request reserves 0.032 (22 + 10 tokens) and costs 0.009 (9 tokens): a
    # second one fits in 0.035 only if the first is forgotten.
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.035)
    assert (await _post(client, gateway, secret, max_tokens=10))[0] == 200
    gateway.stop()  # its ledger rows are written before it exits
    await gateway.start().wait_ready()
    status, _, body = await _post(client, gateway, secret, max_tokens=10)
    assert status == 429 and body["error"]["code"] == "insufficient_quota"


async def test_a_key_a_reload_brings_back_keeps_what_its_budget_period_has_spent(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    # It had begun from nothing: only the keys of the start were read from the ledger.
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.035)
    assert (await _post(client, gateway, secret, max_tokens=10))[0] == 200
    keys = tmp_path / "keys.yaml"
    with_app = keys.read_text()
    other = {"name": "other", "key": new_key("sk-other")}
    keys.write_text(yaml.safe_dump({"keys": [other]}))
    gateway.stop()
    await gateway.start().wait_ready()
    keys.write_text(with_app)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded generation=2" in gateway.logs())
    status, _, body = await _post(client, gateway, secret, max_tokens=10)
    assert status == 429 and body["error"]["code"] == "insufficient_quota"


async def test_fifty_parallel_requests_overspend_a_budget_by_at_most_one_reservation(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    fake.behave("m-alpha", header_delay=0.2)  # all fifty are in flight together
    gateway, secret = await _start(start_gateway, tmp_path, budget=0.3)
    results = await asyncio.gather(*(_post(client, gateway, secret, max_tokens=20)
                                     for _ in range(50)))
    served = sum(1 for status, _, _ in results if status == 200)
    refused = [body for status, _, body in results if status == 429]
    assert served + len(refused) == 50 and 0 < served < 50
    # Refused while what was spent left room: held by the requests under way.
    assert all(b["error"]["code"] == "rate_limit_exceeded" for b in refused)
    assert all("under way" in b["error"]["message"] for b in refused)
    # Each request reserves about 0.06 (its body's tokens and 20 more) and costs 0.01.
    await asyncio.sleep(0.2)  # the last answers' figures are recorded as they end
    assert 0 < await _spend(client, gateway) <= 0.3 + 0.07


async def test_requests_at_once_past_the_key_limit_get_429(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    held = fake.behave("m-alpha", gate=asyncio.Event())
    gateway, secret = await _start(start_gateway, tmp_path, max_parallel=1)
    headers = {"Authorization": f"Bearer {secret}"}
    async with client.post(gateway.url + "/v1/chat/completions", json=_chat(stream=True),
                           headers=headers) as stream:
        await stream.content.readuntil(b"\n\n")
        status, _, body = await _post(client, gateway, secret)
        assert status == 429 and "at once" in body["error"]["message"]
        assert held.gate is not None
        held.gate.set()
        await stream.read()
    assert (await _post(client, gateway, secret))[0] == 200


async def test_a_reload_that_lengthens_the_total_timeout_lengthens_the_slots_leases(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    # The leases kept the total timeout the gateway started with: a request running
    # past it lost its slot, and a second ran beside it on a key of one at once.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, "max_parallel": 1}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)},
                                           "timeouts": {"first_byte": 1, "total": 1}})
    doc = yaml.safe_load((gateway.config_dir / "gateway.yaml").read_text())
    doc["timeouts"].update(first_byte=30, answer=30, idle=30, total=60)
    (gateway.config_dir / "gateway.yaml").write_text(yaml.safe_dump(doc))
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    held = fake.behave("m-alpha", gate=asyncio.Event())
    async with client.post(gateway.url + "/v1/chat/completions", json=_chat(stream=True),
                           headers={"Authorization": f"Bearer {secret}"}) as stream:
        await stream.content.readuntil(b"\n\n")
        await asyncio.sleep(1.5)  # past the lease the first total timeout gave
        status, _, body = await _post(client, gateway, secret)
        assert status == 429 and "at once" in body["error"]["message"]
        assert held.gate is not None
        held.gate.set()
        await stream.read()


async def test_a_stream_the_client_leaves_is_still_billed(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    fake.behave("m-alpha", content="w " * 200, chunk_delay=0.01)
    gateway, secret = await _start(start_gateway, tmp_path, budget=100)
    async with client.post(gateway.url + "/v1/chat/completions", json=_chat(stream=True),
                           headers={"Authorization": f"Bearer {secret}"}) as stream:
        for _ in range(5):
            await stream.content.readuntil(b"\n\n")
    # The client has gone: the gateway cancels the upstream call and bills what it relayed.
    await wait_for(lambda: "m-alpha" in fake.cancelled)

    # Five events relayed, estimated at a token each, and the prompt from the body's size.
    async def billed() -> bool:
        return await _spend(client, gateway) > 0.005

    await poll(billed, what="the key's spend past 0.005", timeout=10)


async def test_a_background_an_upstream_may_read_as_true_is_refused_to_a_budgeted_key(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream
):
    gateway, secret = await _start(start_gateway, tmp_path, budget=5)
    for background in (1, "yes", "true", [True]):
        async with client.post(gateway.url + "/v1/responses",
                               json={"model": "chat", "input": "hi", "background": background},
                               headers={"Authorization": f"Bearer {secret}"}) as resp:
            assert resp.status == 403, background
            assert (await resp.json())["error"]["code"] == "background_not_allowed"
    assert fake.requests == []


@pytest.mark.parametrize("limits", [{"budget": 5}, {"tpm": 100000}])
async def test_a_key_with_a_budget_or_tpm_may_not_run_a_response_in_the_background(
    start_gateway: StartGateway, tmp_path: Path, fake: FakeUpstream, limits: dict[str, Any]
):
    gateway, secret = await _start(start_gateway, tmp_path, **limits)
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=secret,
                                  max_retries=0) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await sdk.responses.create(model="chat", input="hi", background=True)
        await sdk.responses.create(model="chat", input="hi")  # in the foreground it may
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("background_not_allowed", "background")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/chat"])
async def test_listing_models_counts_against_a_key_s_requests_per_minute(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession, path: str
):
    gateway, secret = await _start(start_gateway, tmp_path, rpm=2)
    answers = []
    for _ in range(3):
        async with client.get(gateway.url + path,
                              headers={"Authorization": f"Bearer {secret}"}) as resp:
            answers.append((resp.status, resp.headers.get("x-ratelimit-remaining-requests")))
    assert answers == [(200, "1"), (200, "0"), (429, "0")]


def _spooled(n: int, key: str, cost: float) -> dict[str, Any]:
    """A row as a gateway's spool holds it."""
    now = time.time()
    return {"request_id": f"r{n}", "key_name": key, "route": "chat", "model_group": "chat",
            "model": "alpha", "status": 200, "prompt_tokens": 1, "completion_tokens": 1,
            "total_tokens": 2, "cost": cost, "stream": False, "disconnected": False,
            "failovers": 0, "started": now - 60, "first_byte": None, "ended": now - 59,
            "usage_source": "reported", "outcome": "ok"}


@pytest.mark.postgres
async def test_a_restart_counts_against_a_budget_what_the_spool_holds_before_its_replay(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    own_postgres: Postgres,  # noqa: F811 -- the fixture
):
    # A gateway stopped while PostgreSQL was away left its rows in the spool: a long
    # one, which the next start replays while it already serves.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, "budget": 0.035}]}))
    keys.chmod(0o600)
    state = tmp_path / "state"
    env = {"DATABASE_URL": own_postgres.url(), "HX_STATE_DIR": str(state)}
    settings = {"auth": {"keys_file": str(keys)}}
    (await start_gateway(models=PRICED, gateway=settings, env=env)).stop()  # the schema
    (state / "spool").mkdir(parents=True, exist_ok=True)
    lines = [_spooled(n, "other", 0.0) for n in range(30_000)]
    lines.append(_spooled(30_000, "app", 0.009))
    (state / "spool" / "00000000000000000001-1.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines))
    gateway = await start_gateway(models=PRICED, gateway=settings, env=env)
    # 0.009 spent, and this one reserves 0.032 of the 0.035.
    status, _, body = await _post(client, gateway, secret, max_tokens=10)
    assert (status, body["error"]["code"]) == (429, "insufficient_quota")


@pytest.mark.workers
async def test_a_stream_read_to_its_end_is_no_disconnect_though_the_client_closes_at_once(
    start_gateway: StartGateway, tmp_path: Path
):
    # With workers the limits reconcile in a thread after the last byte: the client's
    # close comes while they do, and once counted as a client gone.
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, "max_parallel": 50}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(models=PRICED,
                                  gateway={"auth": {"keys_file": str(keys)}, "workers": 2})

    async def read_whole_then_close() -> None:
        async with aiohttp.ClientSession() as session, session.post(
            gateway.url + "/v1/chat/completions", json=_chat(stream=True),
            headers={"Authorization": f"Bearer {secret}"}
        ) as resp:
            assert (await resp.read()).endswith(b"data: [DONE]\n\n")

    await asyncio.gather(*(read_whole_then_close() for _ in range(30)))
    await wait_for(lambda: len(ledger_rows(gateway)) == 30, timeout=15)
    assert {(r["outcome"], r["disconnected"]) for r in ledger_rows(gateway)} == {("ok", 0)}


async def test_a_limited_key_gone_before_the_answer_is_billed_its_prompt_as_the_master_key_is(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    fake: FakeUpstream,
):
    fake.behave("m-alpha", header_delay=3)
    gateway, secret = await _start(start_gateway, tmp_path, budget=100)
    with contextlib.suppress(TimeoutError):
        async with client.post(gateway.url + "/v1/chat/completions", json=_chat(),
                               headers={"Authorization": f"Bearer {secret}"},
                               timeout=aiohttp.ClientTimeout(total=0.5)):
            pass
    await wait_for(lambda: len(ledger_rows(gateway)) == 1, timeout=10)
    (row,) = ledger_rows(gateway)
    # The upstream had read the prompt: the ledger and the budget count it.
    prompt = len(json.dumps(_chat())) // 4 + 1
    assert (row["disconnected"], row["usage_source"], row["prompt_tokens"]) == (
        1, "estimated", prompt)
    assert row["cost"] > 0 and await _spend(client, gateway) == pytest.approx(row["cost"])


async def _rows_of_each_key(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession, path: str,
    body: dict[str, Any], **gateway: Any,
) -> dict[str, dict[str, Any]]:
    """The same failing request by the master key and by a key with a limit: their rows."""
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, "rpm": 100}]}))
    keys.chmod(0o600)
    gw = await start_gateway(models=PRICED, gateway={"auth": {"keys_file": str(keys)}, **gateway})
    for key in (gw.key, secret):
        async with client.post(gw.url + path, json=body,
                               headers={"Authorization": f"Bearer {key}"}) as resp:
            assert resp.status >= 500
            await resp.read()
    await wait_for(lambda: len(ledger_rows(gw)) == 2, timeout=10)
    return {row["key_name"]: row for row in ledger_rows(gw)}


BILLED = ("status", "outcome", "prompt_tokens", "completion_tokens", "usage_source", "cost")


async def test_a_limited_key_whose_model_never_answers_pays_its_prompt_as_the_master_key_does(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Its usage was worked out before the error's outcome was set: it had paid nothing.
    fake.behave("m-gamma", header_delay=3)
    rows = await _rows_of_each_key(
        start_gateway, tmp_path, client, "/v1/chat/completions",
        {"model": "solo", "messages": [{"role": "user", "content": "a prompt of some length"}]},
        timeouts={"first_byte": 1})
    assert rows["master"]["prompt_tokens"] > 0 and rows["master"]["outcome"] == "upstream_timeout"
    assert [rows["app"][f] for f in BILLED] == [rows["master"][f] for f in BILLED]


async def test_a_limited_key_s_answer_cut_mid_body_is_billed_as_the_master_key_s(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Its status was still unset when its usage was worked out: it paid for a 502.
    fake.behave("m-gamma", reset_after_chunks=1)
    rows = await _rows_of_each_key(start_gateway, tmp_path, client, "/v1/responses",
                                   {"model": "solo", "input": "write at length"})
    assert rows["master"]["status"] == 502
    assert [rows["app"][f] for f in BILLED] == [rows["master"][f] for f in BILLED]
