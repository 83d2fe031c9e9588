"""How a key's refusal reads: the 429's class, its body, in OpenAI's words where OpenAI
has them, and its headers, which tell the SDKs whether retrying within the call can
help."""

from __future__ import annotations

import math
import time

from hxgw import jsonio
from hxgw.config.schema import DEFAULT_COMPLETION, PERIOD_NAMES
from hxgw.errors import LONGEST_SDK_WAIT, KeyLimited, KeyOverBudget
from hxgw.keys.limits import LimitDecision, duration
from hxgw.units import hours, money, shown_amount

NO_MAX_TOKENS = f"its model's max_output_tokens ({DEFAULT_COMPLETION} unless the registry says)"
"""What a request that sets no max_tokens reserves for its answer (usage.estimated_completion)."""


def refusal_headers(decision: LimitDecision) -> dict[str, str]:
    """The 429's headers: the key's rate-limit headers, and `x-should-retry: false`
    (which the SDKs obey before any other rule) when retrying within the call cannot
    help: the request is larger than the limit itself (then no `retry-after` either: no
    wait lets it in), or the wait is longer than a client should sleep in one call (a
    spent budget renews in hours)."""
    headers = decision.headers()
    if _never_fits(decision):
        headers["x-should-retry"] = "false"
        del headers["retry-after"], headers["retry-after-ms"]
    elif decision.retry_after > LONGEST_SDK_WAIT:
        headers["x-should-retry"] = "false"
    return headers


def _never_fits(decision: LimitDecision) -> bool:
    """Whether the request is larger than the limit itself: no wait lets it in."""
    budget, tpm = decision.limits.budget, decision.limits.tpm
    if decision.refused == "budget":
        return budget is not None and decision.est_cost > budget
    return decision.refused == "tokens" and tpm is not None and decision.est_tokens > tpm


def refusal(
    decision: LimitDecision,
    prompt_tokens: int,
    prompt_cost: float,
    *,
    anthropic: bool,
    end_user: str | None = None,
    team: str | None = None,
) -> KeyLimited:
    """The 429 for a request `decision` refused: its body, in OpenAI's shape (the error
    renderer gives Anthropic's clients theirs), and its headers (Anthropic's own too, for
    `anthropic`). The request's prompt alone (its estimated tokens, the most it may cost)
    tells the message whether fewer tokens asked for could let it in. `end_user`: the
    limits were those the key gives each end user, and this is the request's; `team`:
    they were those of the key's team, and this is its name."""
    kind: type[KeyLimited] = KeyLimited
    code = "rate_limit_exceeded"
    who = "end user" if end_user is not None else "team" if team is not None else "key"
    if decision.refused == "budget":
        message = _budget_message(decision, prompt_cost, who)
        # Held by requests under way, it is no spent quota, which code reading
        # `insufficient_quota` stops on: a wait of a second, as for too many at once.
        error_type = "requests"
        if not budget_held(decision):
            kind, error_type = KeyOverBudget, "insufficient_quota"
            code = error_type
    else:
        message = _rate_message(decision, prompt_tokens)
        error_type = "tokens" if decision.refused == "tokens" else "requests"
    if end_user is not None:
        message += f" (a limit of each end user of this key; this one is {end_user[:64]!r})"
    elif team is not None:
        message += f" (a limit of the team {team!r}, shared by all its keys)"
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    headers = refusal_headers(decision)
    if anthropic:
        headers |= decision.anthropic_headers()
    return kind(message, headers=headers, body=jsonio.dumps(body))


def budget_held(decision: LimitDecision) -> bool:
    """Whether a budget refuses the request only for the requests under way: what is
    spent leaves room for it, and room comes back as they end."""
    budget = decision.limits.budget
    return bool(budget) and decision.usage.spent + decision.est_cost <= (budget or 0.0)


def _budget_message(decision: LimitDecision, prompt_cost: float, who: str) -> str:
    limits, usage, wait = decision.limits, decision.usage, _wait(decision.retry_after)
    period = PERIOD_NAMES.get(limits.budget_period_s, "period")
    used = usage.spent + usage.reserved
    budget, needs, spent_or_held = _amounts(limits.budget or 0.0, decision.est_cost, used)
    if not limits.budget:  # no max_tokens can make a request fit: say what can
        return (
            f"This {who}'s budget is 0 per {period}: it may make no request that costs "
            "anything (only models without a price)."
        )
    if prompt_cost > limits.budget:
        budget, prompt = _amounts(limits.budget, prompt_cost)
        return (
            f"Request too large for the budget: budget {budget} per {period}, this "
            f"request's prompt alone may cost up to {prompt} (at its dearest model's "
            "price): send a shorter prompt."
        )
    if _never_fits(decision):
        return (
            f"Request too large for the budget: budget {budget} per {period}, "
            f"this request needs up to {needs} (the max_tokens it asks for, or {NO_MAX_TOKENS} "
            "when it sets none, at its dearest model's price): set a lower max_tokens."
        )
    if budget_held(decision):
        budget, needs, spent, held = _amounts(
            limits.budget or 0.0, decision.est_cost, usage.spent, usage.reserved
        )
        return (
            f"Budget held by requests under way: budget {budget} per {period}, spent "
            f"{spent}, reserved by requests under way {held}"
            f", this request needs up to {needs}. Please try again in {wait}."
        )
    at = time.strftime("%Y-%m-%d %H:%M", time.gmtime(decision.now + decision.retry_after))
    renews = f"the budget renews in {hours(decision.retry_after)}, at {at} UTC."
    # Judged on the figures as shown: a spend settles a hair under the budget (each
    # estimate is a bound the real cost comes in under), and reads as all of it.
    # Spent, not held: what requests under way hold comes back as they end.
    if usage.spent + prompt_cost > limits.budget and shown_amount(spent_or_held) < shown_amount(
        budget
    ):
        budget, prompt, spent_or_held = _amounts(limits.budget, prompt_cost, used)
        return (
            f"This request's prompt alone would exceed what is left of the {who}'s budget: "
            f"budget {budget} per {period}, spent or reserved {spent_or_held}, its prompt "
            f"may cost up to {prompt} (at its dearest model's price): send a shorter "
            f"prompt, or wait: {renews}"
        )
    if shown_amount(spent_or_held) < shown_amount(budget):
        return (
            f"This request would exceed the {who}'s budget: budget {budget} per {period}, "
            f"spent or reserved {spent_or_held}, this request needs up to {needs} (its "
            "prompt, and the most it may write: its max_tokens or max_output_tokens, or "
            f"{NO_MAX_TOKENS} when it sets none, at its dearest model's price): ask for "
            f"fewer tokens, or wait: {renews}"
        )
    return (
        f"You exceeded your current quota: budget {budget} per {period}, "
        f"spent or reserved {spent_or_held}, this request needs up to {needs}. "
        f"{renews[0].upper()}{renews[1:]}"
    )


def _rate_message(decision: LimitDecision, prompt_tokens: int) -> str:
    limits, usage, wait = decision.limits, decision.usage, _wait(decision.retry_after)
    if decision.refused == "tokens":
        if limits.tpm is not None and prompt_tokens > limits.tpm:
            return (
                f"Request too large for tokens per min (TPM): Limit {limits.tpm}, its prompt "
                f"alone is about {prompt_tokens} tokens: send a shorter prompt."
            )
        if _never_fits(decision):
            return (
                f"Request too large for tokens per min (TPM): Limit {limits.tpm}, "
                f"Requested {decision.est_tokens} (its prompt and the max_tokens it asks "
                f"for, or {NO_MAX_TOKENS} when it sets none): set a lower max_tokens."
            )
        return (
            f"Rate limit reached for tokens per min (TPM): Limit {limits.tpm}, "
            f"Used {usage.tokens}, Requested {decision.est_tokens}. Please try again in {wait}."
        )
    if decision.refused == "concurrency":
        return (
            f"Too many requests at once: Limit {limits.max_parallel}, "
            f"In flight {usage.parallel}. Please try again in {wait}."
        )
    return (
        f"Rate limit reached for requests per min (RPM): Limit {limits.rpm}, "
        f"Used {usage.requests}, Requested 1. Please try again in {wait}."
    )


def _amounts(budget: float, *parts: float) -> list[str]:
    """`budget` and `parts` (which together overflow it) as money: in cents, unless cents
    would make them fit (0.16 + 0.04 of 0.20), then to the places that show they do not."""
    shown = [money(amount) for amount in (budget, *parts)]
    if sum(map(shown_amount, shown[1:])) > shown_amount(shown[0]):
        return shown
    for places in range(3, 9):
        if sum(round(part, places) for part in parts) > round(budget, places):
            break
    return [f"{amount:.{places}f}" for amount in (budget, *parts)]


def _wait(seconds: float) -> str:
    return duration(seconds) if seconds < 60 else f"{math.ceil(seconds)}s"
