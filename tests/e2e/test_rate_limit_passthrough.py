"""An upstream's rate limit reaches the client as the upstream said it, seen by the OpenAI SDK.

SDKs back off by the status, the error body and the `x-ratelimit-*`,
`retry-after` and `retry-after-ms` headers; the gateway keeps them when there is
no failover to report (one candidate), and when every candidate was rate limited.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway

MESSAGES: Any = [{"role": "user", "content": "hi"}]
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


async def _refused(gateway: Gateway, model: str, error: type[openai.APIStatusError]
                   ) -> httpx2.Response:
    """The response the SDK raised `error` for, asked for `model` with no retries."""
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0, timeout=10) as client:
        with pytest.raises(error) as caught:
            await client.chat.completions.with_raw_response.create(model=model,
                                                                   messages=MESSAGES)
    return caught.value.response


def _rate_limit_headers(headers: httpx2.Headers) -> dict[str, str | None]:
    return {name: headers.get(name) for name in RATE_LIMIT_HEADERS}


async def test_a_pinned_models_429_reaches_the_client_with_the_upstreams_body(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=429, error_message="Rate limit reached for m-alpha")
    response = await _refused(gateway, "alpha", openai.RateLimitError)
    assert response.status_code == 429
    assert response.json() == {"error": {"message": "Rate limit reached for m-alpha",
                                         "type": "requests", "param": None,
                                         "code": "rate_limit_exceeded"}}


async def test_a_pinned_models_429_keeps_the_upstreams_rate_limit_headers(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=429, headers={"x-ratelimit-remaining-tokens": "12"})
    response = await _refused(gateway, "alpha", openai.RateLimitError)
    assert _rate_limit_headers(response.headers) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-limit-tokens": "40000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "12",
        "x-ratelimit-reset-requests": "20s",
        "x-ratelimit-reset-tokens": "45ms",
    }


async def test_a_pinned_models_429_keeps_retry_after_and_retry_after_ms(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=429, retry_after="20", retry_after_ms="19250")
    response = await _refused(gateway, "alpha", openai.RateLimitError)
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == (
        "20", "19250")


async def test_a_pinned_models_5xx_reaches_the_client_with_the_upstreams_status_and_body(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=503)
    response = await _refused(gateway, "alpha", openai.InternalServerError)
    assert response.status_code == 503
    assert response.json()["error"]["message"] == (
        "The engine is currently overloaded, please try again later")


async def test_a_one_model_groups_429_reaches_the_client_as_the_upstream_said_it(
    start_gateway: StartGateway, fake: FakeUpstream
):
    gateway = await start_gateway(
        routing={"routing": {"default_group": "solo", "groups": {"solo": ["gamma"]}}})
    fake.behave("m-gamma", status=429, retry_after="4")
    response = await _refused(gateway, "solo", openai.RateLimitError)
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"


def _every_candidate_rate_limited(fake: FakeUpstream) -> None:
    """alpha asks for the shorter wait; beta, tried last, is out of tokens."""
    fake.behave("m-alpha", status=429, error_message="alpha is busy", retry_after="3",
                retry_after_ms="2500")
    fake.behave("m-beta", status=429, error_message="beta is out of tokens",
                error_type="tokens", retry_after="7", retry_after_ms="6500",
                headers={"x-ratelimit-remaining-tokens": "0",
                         "x-ratelimit-reset-tokens": "6.5s"})


async def test_when_every_candidate_is_rate_limited_the_client_gets_the_last_upstreams_body(
    gateway: Gateway, fake: FakeUpstream
):
    _every_candidate_rate_limited(fake)
    response = await _refused(gateway, "chat", openai.RateLimitError)
    assert fake.seen_models() == ["m-alpha", "m-beta"]
    assert response.json() == {"error": {"message": "beta is out of tokens", "type": "tokens",
                                         "param": None, "code": "rate_limit_exceeded"}}


async def test_when_every_candidate_is_rate_limited_the_client_gets_the_last_rate_limit_headers(
    gateway: Gateway, fake: FakeUpstream
):
    _every_candidate_rate_limited(fake)
    response = await _refused(gateway, "chat", openai.RateLimitError)
    headers = _rate_limit_headers(response.headers)
    assert (headers["x-ratelimit-remaining-tokens"], headers["x-ratelimit-reset-tokens"]) == (
        "0", "6.5s")


async def test_when_every_candidate_is_rate_limited_both_retry_headers_say_the_shortest_wait(
    gateway: Gateway, fake: FakeUpstream
):
    _every_candidate_rate_limited(fake)
    response = await _refused(gateway, "chat", openai.RateLimitError)
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == (
        "3", "2500")


async def test_the_upstreams_x_should_retry_reaches_the_client(
    gateway: Gateway, fake: FakeUpstream
):
    # Both SDKs obey it before their own rules: here, not to retry a 429.
    fake.behave("m-alpha", status=429, headers={"x-should-retry": "false"})
    response = await _refused(gateway, "alpha", openai.RateLimitError)
    assert response.headers["x-should-retry"] == "false"


async def test_an_upstreams_429_asking_a_wait_longer_than_a_call_should_sleep_says_not_to_retry(
    gateway: Gateway, fake: FakeUpstream
):
    # Anthropic's SDKs sleep whatever Retry-After says: five silent minutes in one call.
    fake.behave("m-alpha", status=429, retry_after="300")
    response = await _refused(gateway, "alpha", openai.RateLimitError)
    assert (response.headers["x-should-retry"], response.headers["retry-after"]) == ("false",
                                                                                    "300")


async def test_every_candidate_asking_a_long_wait_in_answers_too_big_to_relay_says_not_to_retry(
    gateway: Gateway, fake: FakeUpstream
):
    # Answers past 64 KiB are not kept to relay: the gateway says the 429 itself.
    for model in ("m-alpha", "m-beta"):
        fake.behave(model, status=429, retry_after="300", error_message="x" * 70_000)
    response = await _refused(gateway, "chat", openai.RateLimitError)
    assert (response.headers["x-should-retry"], response.headers["retry-after"]) == ("false",
                                                                                    "300")
    assert "every candidate model is rate limited" in response.json()["error"]["message"]


async def test_an_upstreams_429_asking_a_short_wait_leaves_the_retry_to_the_sdk(
    gateway: Gateway, fake: FakeUpstream
):
    fake.behave("m-alpha", status=429, retry_after="20")
    response = await _refused(gateway, "alpha", openai.RateLimitError)
    assert "x-should-retry" not in response.headers


async def test_an_upstreams_spent_quota_says_not_to_retry(gateway: Gateway, fake: FakeUpstream):
    # The gateway's own account's quota: no retry of the client's refills it.
    fake.behave("m-alpha", status=429, error_type="insufficient_quota",
                error_code="insufficient_quota", error_message="You exceeded your current quota")
    response = await _refused(gateway, "alpha", openai.RateLimitError)
    assert response.headers["x-should-retry"] == "false"
    assert response.json()["error"]["code"] == "insufficient_quota"
