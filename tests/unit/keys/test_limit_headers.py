"""What a client sees of a decision: OpenAI's x-ratelimit-* headers, retry-after and the
429 body, in OpenAI's formats."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hxgw.errors import KeyLimited, KeyOverBudget
from hxgw.keys.limiter_memory import MemoryLimiter
from hxgw.keys.limits import KeyLimits, LimitDecision, duration
from hxgw.keys.refusal import refusal, refusal_headers

NOW = 1_700_000_000.0


def error_body(
    decision: LimitDecision, prompt_tokens: int = 0, prompt_cost: float = 0.0
) -> dict[str, Any]:
    """The 429's body, as the client reads it."""
    body: dict[str, Any] = json.loads(refusal(decision, prompt_tokens, prompt_cost,
                                              anthropic=False).to_json())
    return body


async def _asking_after(budget: float, spent: tuple[float, ...], asks: float) -> LimitDecision:
    """The decision on a request that may cost `asks`, once requests that cost `spent`
    have been charged to a key with `budget`."""
    limiter, limits = MemoryLimiter(), KeyLimits(budget=budget)
    for cost in spent:
        made = await limiter.reserve("k", limits, 1, cost, NOW)
        assert made.reservation is not None
        await limiter.reconcile(made.reservation, 1, cost, NOW)
    return await limiter.reserve("k", limits, 1, asks, NOW)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.0004, "0s"), (0.02, "20ms"), (0.9994, "999ms"), (1, "1s"), (1.5, "1.5s"),
    (7.66, "7.66s"), (60, "1m0s"), (179.56, "2m59.56s"), (360, "6m0s"), (3600, "1h0m0s"),
    (86_400 + 61.25, "24h1m1.25s"),
])
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


async def test_an_allowed_request_is_told_what_is_left() -> None:
    limiter = MemoryLimiter()
    limits = KeyLimits(rpm=60, tpm=150_000)
    await limiter.reserve("k", limits, 16, 0.0, NOW)
    decision = await limiter.reserve("k", limits, 100, 0.0, NOW + 0.5)
    assert decision.headers() == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "58",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": "149884",
        "x-ratelimit-reset-tokens": "1m0s",
    }


async def test_a_refused_request_gets_retry_after_in_seconds_and_milliseconds() -> None:
    limiter = MemoryLimiter()
    limits = KeyLimits(rpm=1)
    await limiter.reserve("k", limits, 1, 0.0, NOW)
    decision = await limiter.reserve("k", limits, 1, 0.0, NOW + 20.25)
    headers = decision.headers()
    assert headers["retry-after"] == "40"
    assert headers["retry-after-ms"] == "39750"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "39.75s"


async def test_the_429_is_openai_shaped_for_requests() -> None:
    limiter = MemoryLimiter()
    await limiter.reserve("k", KeyLimits(rpm=1), 1, 0.0, NOW)
    decision = await limiter.reserve("k", KeyLimits(rpm=1), 1, 0.0, NOW + 30)
    body = error_body(decision)
    assert refusal_headers(decision)["retry-after"] == "30"
    assert body["error"]["type"] == "requests"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["param"] is None
    assert body["error"]["message"] == (
        "Rate limit reached for requests per min (RPM): Limit 1, Used 1, Requested 1. "
        "Please try again in 30s.")


async def test_the_429_for_tokens_has_type_tokens() -> None:
    limiter = MemoryLimiter()
    decision = await limiter.reserve("k", KeyLimits(tpm=100), 101, 0.0, NOW)
    assert error_body(decision)["error"] | {"message": ""} == {
        "message": "", "type": "tokens", "param": None, "code": "rate_limit_exceeded"}
    assert "Request too large" in error_body(decision)["error"]["message"]


async def test_a_request_too_large_for_the_tpm_is_told_to_ask_for_fewer_tokens() -> None:
    limiter = MemoryLimiter()
    decision = await limiter.reserve("k", KeyLimits(tpm=100), 272, 0.0, NOW)
    assert error_body(decision)["error"]["message"].endswith(
        "Requested 272 (its prompt and the max_tokens it asks for, or its model's "
        "max_output_tokens (256 unless the registry says) when it sets none): set a lower "
        "max_tokens.")


async def test_a_prompt_larger_than_the_tpm_is_told_to_be_shorter_not_to_ask_for_less() -> None:
    limiter = MemoryLimiter()
    decision = await limiter.reserve("k", KeyLimits(tpm=100), 377, 0.0, NOW)
    assert error_body(decision, prompt_tokens=121)["error"]["message"] == (
        "Request too large for tokens per min (TPM): Limit 100, its prompt alone is about "
        "121 tokens: send a shorter prompt.")


async def test_the_429_for_concurrency_has_type_requests() -> None:
    limiter = MemoryLimiter()
    await limiter.reserve("k", KeyLimits(max_parallel=1), 1, 0.0, NOW)
    decision = await limiter.reserve("k", KeyLimits(max_parallel=1), 1, 0.0, NOW)
    assert error_body(decision)["error"]["type"] == "requests"
    assert decision.headers()["retry-after"] == "1"


async def test_the_429_for_a_budget_is_insufficient_quota() -> None:
    decision = await _asking_after(0.5, (0.25,), asks=0.3)
    assert type(refusal(decision, 0, 0.0, anthropic=False)) is KeyOverBudget
    error = error_body(decision)["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert error["message"].startswith("This request would exceed the key's budget: budget "
                                       "0.50 per 1d, spent or reserved 0.25, this request "
                                       "needs up to 0.30 (its prompt, and the most it may "
                                       "write")


async def test_a_budget_spent_to_its_end_says_the_quota_is_exceeded_and_when_it_renews() -> None:
    decision = await _asking_after(0.5, (0.5,), asks=0.01)
    message = error_body(decision)["error"]["message"]
    assert message.startswith("You exceeded your current quota: budget 0.50 per 1d, spent "
                              "or reserved 0.50, this request needs up to 0.01. The budget "
                              "renews in "), message
    assert re.search(r"renews in \d+h\d+m, at \d{4}-\d\d-\d\d 00:00 UTC\.$", message)
    assert "max_tokens" not in message


async def test_a_request_that_would_overrun_what_is_left_may_ask_for_less_or_wait() -> None:
    # Seen by a newcomer: 0.70 of 3.00 spent, 2.50 asked for, told "You exceeded your
    # current quota" with 2.30 left.
    decision = await _asking_after(3.0, (0.7,), asks=2.5)
    message = error_body(decision)["error"]["message"]
    assert "ask for fewer tokens, or wait: the budget renews in " in message
    assert "exceeded" not in message


async def test_a_prompt_that_alone_overruns_what_is_left_is_told_to_be_shorter_not_to_ask_less(
) -> None:
    # Fewer tokens asked for cannot let in a prompt that costs more than is left.
    decision = await _asking_after(3.0, (2.5,), asks=0.8)
    message = error_body(decision, prompt_cost=0.6)["error"]["message"]
    assert message.startswith("This request's prompt alone would exceed what is left of the "
                              "key's budget: budget 3.00 per 1d, spent or reserved 2.50, its "
                              "prompt may cost up to 0.60"), message
    assert "send a shorter prompt, or wait: the budget renews in " in message


async def test_a_prompt_that_fits_once_requests_under_way_end_is_not_told_to_be_shorter(
) -> None:
    # Spent 0.5 of 1.0 and 0.4 held by a request under way: a prompt of 0.2 fits once it
    # ends, so asking for fewer tokens may let the request in.
    limiter, limits = MemoryLimiter(), KeyLimits(budget=1.0)
    spent = await limiter.reserve("k", limits, 1, 0.5, NOW)
    assert spent.reservation is not None
    await limiter.reconcile(spent.reservation, 1, 0.5, NOW)
    assert (await limiter.reserve("k", limits, 1, 0.4, NOW)).allowed  # under way
    decision = await limiter.reserve("k", limits, 1, 0.6, NOW)
    message = error_body(decision, prompt_cost=0.2)["error"]["message"]
    assert "prompt alone" not in message and "ask for fewer tokens" in message, message


async def test_a_budget_held_by_requests_under_way_is_a_rate_limit_not_a_spent_quota(
) -> None:
    # Code that reads insufficient_quota stops for good; room comes back as they end.
    limiter, limits = MemoryLimiter(), KeyLimits(budget=1.0)
    assert (await limiter.reserve("k", limits, 1, 0.7, NOW)).allowed  # under way
    decision = await limiter.reserve("k", limits, 1, 0.5, NOW)
    refused = refusal(decision, 0, 0.0, anthropic=False)
    assert type(refused) is KeyLimited and refused.code == "rate_limit_exceeded"
    assert error_body(decision)["error"]["message"].startswith("Budget held by requests under way")


async def test_a_prompt_that_alone_costs_more_than_the_whole_budget_is_too_large() -> None:
    decision = await _asking_after(0.5, (), asks=0.9)
    message = error_body(decision, prompt_cost=0.7)["error"]["message"]
    assert message == ("Request too large for the budget: budget 0.50 per 1d, this request's "
                       "prompt alone may cost up to 0.70 (at its dearest model's price): send "
                       "a shorter prompt.")


async def test_a_spend_a_hair_under_the_budget_reads_as_the_budget_spent() -> None:
    # 0.7 + 0.2 + 0.1 adds up to 0.9999999999999999: shown as 1.00 of 1.00, it is spent.
    decision = await _asking_after(1.0, (0.7, 0.2, 0.1), asks=0.01)
    message = error_body(decision)["error"]["message"]
    assert message.startswith("You exceeded your current quota: budget 1.00 per 1d, spent or "
                              "reserved 1.00"), message


async def test_a_refusal_s_figures_show_the_overflow_that_cents_would_hide() -> None:
    # Seen across two instances: "budget 0.20 ..., spent or reserved 0.16, this request
    # needs up to 0.04": in cents the request fits, and the refusal reads as a mistake.
    decision = await _asking_after(0.2, (0.1615,), asks=0.0425)
    message = error_body(decision)["error"]["message"]
    assert message.startswith("This request would exceed the key's budget: budget 0.200 per "
                              "1d, spent or reserved 0.162, this request needs up to 0.043 "
                              "("), message


async def test_a_budget_refusal_says_in_hours_and_minutes_and_in_utc_when_it_renews() -> None:
    decision = await _asking_after(0.001, (0.00097,), asks=0.000042)
    message = error_body(decision)["error"]["message"]
    assert "spent or reserved 0.00097, this request needs up to 0.000042 (" in message
    assert re.search(r"renews in \d+h\d+m, at \d{4}-\d\d-\d\d 00:00 UTC\.$", message)


async def test_a_budget_of_nothing_says_so_rather_than_to_ask_for_less() -> None:
    decision = await MemoryLimiter().reserve("k", KeyLimits(budget=0.0), 10, 0.001, NOW)
    message = error_body(decision)["error"]["message"]
    assert message.startswith("This key's budget is 0 per 1d: it may make no request")
    assert refusal_headers(decision)["x-should-retry"] == "false"


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="rpm must be at least 1"):
        KeyLimits(rpm=0)


async def test_a_request_over_the_whole_budget_is_told_to_ask_for_less_not_to_wait() -> None:
    limiter = MemoryLimiter()
    decision = await limiter.reserve("k", KeyLimits(budget=1.0), 10, 5.35, NOW)
    message = error_body(decision)["error"]["message"]
    assert message.startswith("Request too large for the budget: budget 1.00 per 1d, this "
                              "request needs up to 5.35") and "renews" not in message
    assert refusal_headers(decision)["x-should-retry"] == "false"


async def test_a_request_over_the_whole_budget_gets_no_retry_after() -> None:
    # A Retry-After of the hours until the budget renews promised a wait that cannot help.
    decision = await MemoryLimiter().reserve("k", KeyLimits(budget=1.0), 10, 5.35, NOW)
    headers = refusal_headers(decision)
    assert "retry-after" not in headers and "retry-after-ms" not in headers


async def test_a_request_over_the_whole_tpm_gets_no_retry_after() -> None:
    decision = await MemoryLimiter().reserve("k", KeyLimits(tpm=100), 101, 0.0, NOW)
    headers = refusal_headers(decision)
    assert "retry-after" not in headers and "retry-after-ms" not in headers


async def test_a_spent_budget_is_not_retried_within_the_call_as_it_renews_in_hours() -> None:
    decision = await _asking_after(1.0, (0.8,), asks=0.5)
    assert "renews in" in error_body(decision)["error"]["message"]
    headers = refusal_headers(decision)
    assert int(headers["retry-after"]) > 3600
    assert headers["x-should-retry"] == "false"


async def test_a_request_over_the_whole_tpm_is_not_retried() -> None:
    decision = await MemoryLimiter().reserve("k", KeyLimits(tpm=100), 101, 0.0, NOW)
    assert refusal_headers(decision)["x-should-retry"] == "false"


async def test_a_refusal_that_a_short_wait_lifts_leaves_the_retry_to_the_sdk() -> None:
    limiter = MemoryLimiter()
    await limiter.reserve("k", KeyLimits(rpm=1), 1, 0.0, NOW)
    headers = refusal_headers(await limiter.reserve("k", KeyLimits(rpm=1), 1, 0.0, NOW + 30))
    assert "x-should-retry" not in headers


async def test_an_end_user_s_refusal_names_no_more_than_its_first_64_characters() -> None:
    # The end user is the client's to say: up to 256 characters are kept, and a message
    # is no place for all of them.
    limiter, limits = MemoryLimiter(), KeyLimits(rpm=1)
    await limiter.reserve("k user " + "x" * 256, limits, 1, 0.0, NOW)
    decision = await limiter.reserve("k user " + "x" * 256, limits, 1, 0.0, NOW + 30)
    refused = refusal(decision, 0, 0.0, anthropic=False, end_user="x" * 256)
    message = json.loads(refused.to_json())["error"]["message"]
    assert message.endswith(f"(a limit of each end user of this key; this one is {'x' * 64!r})")
