"""Per client key figures, by the key's name (never its secret): its requests, tokens
and spend, the refusals of its own limits, and its budget with what it spent this
period, as the limiter last said them; and of each team, the refusals of its limits and
the same budget figures.

Plain numbers a collector reads at scrape time, as `hxgw.observe.metrics` keeps its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hxgw.config import ClientKey, KeyLimits

# Each is there at 0 once a key is seen, so that its first refusal is an increase().
KEY_REFUSALS = ("rate_limit_exceeded", "insufficient_quota")

Budget = list[float]
"""[budget, spent this period, when the limiter said so (epoch s), period length (s)]."""


class KeyFigures:
    def __init__(self) -> None:
        # key: [requests, prompt, completion, spend, then a count per KEY_REFUSALS]
        self._keys: dict[str, list[float]] = {}
        # team: a count per KEY_REFUSALS of its own limits' refusals
        self._teams: dict[str, list[int]] = {}
        self.budgets = BudgetGauges("key", "a client key")
        self.teams = BudgetGauges("team", "a team of keys")
        self.keys_now: Callable[[], Iterable[ClientKey]] | None = None
        """The keys that open the gateway now: the budget gauges say their budgets (and
        their teams') as they are (changed by `hxgw keys update`, `hxgw teams update` or
        a reload), and leave out a key or team that is gone (revoked, expired, removed)
        or has no budget any more."""

    def used(self, key: str, prompt: int, completion: int, cost: float, outcome: str) -> None:
        """One request of the key named `key`, what it used, and whether one of the key's
        own limits refused it (`outcome`, the access line's)."""
        figures = self._keys.get(key)
        if figures is None:
            figures = self._keys[key] = [0, 0, 0, 0.0, *(0 for _ in KEY_REFUSALS)]
        figures[0] += 1
        figures[1] += prompt
        figures[2] += completion
        figures[3] += cost
        if outcome in KEY_REFUSALS:
            figures[4 + KEY_REFUSALS.index(outcome)] += 1

    def team_asked(self, team: str) -> None:
        """A request of a key in `team` reached its limits: the team's refusals are there
        from then on, at 0 (an increase() needs a series before its first refusal)."""
        if team not in self._teams:
            self._teams[team] = [0 for _ in KEY_REFUSALS]

    def team_refused(self, team: str, outcome: str) -> None:
        """The limits of `team`, which all its keys share, refused a request (`outcome`,
        one of KEY_REFUSALS); counted under the key too, in `used`."""
        self.team_asked(team)
        self._teams[team][KEY_REFUSALS.index(outcome)] += 1

    def billed(self, key: str, prompt: int, completion: int, cost: float) -> None:
        """Usage billed to `key` apart from its requests (a batch's, a background
        response's, once the store took it): tokens and spend, no request. A report
        below its estimate adds nothing: a counter that falls is read by Prometheus as
        a reset, and its increase() jumps by all of it (the ledger has the report)."""
        figures = self._keys.get(key)
        if figures is None:
            figures = self._keys[key] = [0, 0, 0, 0.0, *(0 for _ in KEY_REFUSALS)]
        figures[1] += max(prompt, 0)
        figures[2] += max(completion, 0)
        figures[3] += max(cost, 0.0)

    def families(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        requests = CounterMetricFamily(
            "hxgw_key_requests", "Requests per client key (by its name).", labels=["key"]
        )
        tokens = CounterMetricFamily(
            "hxgw_key_tokens",
            "Tokens per client key, as reported by the upstream or estimated.",
            labels=["key", "kind"],
        )
        spend = CounterMetricFamily(
            "hxgw_key_spend",
            "Spend per client key, in the currency of the models' prices (model_registry.yaml).",
            labels=["key"],
        )
        refused = CounterMetricFamily(
            "hxgw_key_refused",
            "Requests a client key's own limits refused (429): rate_limit_exceeded (rpm, "
            "tpm, max_parallel) or insufficient_quota (its budget for the period).",
            labels=["key", "outcome"],
        )
        for key, (count, prompt, completion, cost, *refusals) in list(self._keys.items()):
            requests.add_metric([key], count)
            tokens.add_metric([key, "prompt"], prompt)
            tokens.add_metric([key, "completion"], completion)
            spend.add_metric([key], cost)
            for outcome, times in zip(KEY_REFUSALS, refusals, strict=True):
                refused.add_metric([key, outcome], times)
        team_refused = CounterMetricFamily(
            "hxgw_team_refused",
            "Requests a team's limits refused (429), which all its keys share; each is in "
            "hxgw_key_refused_total of the key that sent it too.",
            labels=["team", "outcome"],
        )
        for team, counts in list(self._teams.items()):
            for outcome, times in zip(KEY_REFUSALS, counts, strict=True):
                team_refused.add_metric([team, outcome], times)
        yield from (requests, tokens, spend, refused, team_refused)
        now, keys = time.time(), None
        if self.keys_now is not None and (self.budgets or self.teams):  # none shown: no walk
            keys = list(self.keys_now())
        for gauges, holder in ((self.budgets, _own), (self.teams, _team)):
            yield from gauges.families(None if keys is None else _budgets(keys, now, holder), now)


class BudgetGauges:
    """The budgets of one kind of holder (keys, or teams), by name, with what each spent
    this period, as the limiter last said them: `hxgw_{kind}_budget` and
    `hxgw_{kind}_budget_spent`, labelled `{kind}`."""

    def __init__(self, kind: str, holder: str) -> None:
        self.kind, self.holder = kind, holder
        self._budgets: dict[str, Budget] = {}

    def __len__(self) -> int:
        return len(self._budgets)

    def seen(self, name: str, budget: float, spent: float, now: float, period_s: int) -> None:
        """The limiter judged a request of the holder `name`, whose budget is `budget` per
        period of `period_s` seconds, and said it had spent `spent` of it at `now` (the
        requests under way not counted)."""
        self._budgets[name] = [budget, spent, now, period_s]

    def charged(self, name: str, cost: float, now: float) -> None:
        """A request of `name` ended and was charged `cost`, as the limiter charges it: to
        the period under way now, so the gauge need not wait for its next request. Added
        to its figures as they are now, which a request decided since may have replaced
        (requests of one key overlap)."""
        figures = self._budgets.get(name)
        if figures is None:
            return
        period_s = figures[3]
        if now // period_s != figures[2] // period_s:  # a new period: its first charge
            figures[1:3] = [0.0, now]
        figures[1] += cost

    def spent(self, name: str, spent: float, now: float) -> None:
        """What the limiter says `name` has spent this period, once a charge is in: with
        workers, every worker's charges. (Each worker's gauge had missed the others'
        since its own last request, and the daemon's, the highest of them, stayed low
        while the key was idle.)"""
        figures = self._budgets.get(name)
        if figures is not None:
            figures[1:3] = [spent, now]

    def families(self, budgets: dict[str, float] | None, now: float) -> Iterator[GaugeMetricFamily]:
        """The two gauges at `now`; `budgets`: those of the holders now, by name (None:
        unknown), which a holder gone or without a budget is left out by."""
        budget = GaugeMetricFamily(
            f"hxgw_{self.kind}_budget",
            f"The budget per period of {self.holder} (its budget_period), in the currency of"
            " the models' prices; for those with a budget that made a request since the start.",
            labels=[self.kind],
        )
        spent = GaugeMetricFamily(
            f"hxgw_{self.kind}_budget_spent",
            f"What {self.holder} spent of its budget this period, as its limiter counts it"
            " (requests under way not yet in it); 0 once a new period starts.",
            labels=[self.kind],
        )
        for name, (amount, so_far, then, period_s) in list(self._budgets.items()):
            if budgets is not None:
                if name not in budgets:
                    del self._budgets[name]
                    continue
                amount = budgets[name]
            budget.add_metric([name], amount)
            same_period = now // period_s == then // period_s
            spent.add_metric([name], so_far if same_period else 0.0)
        yield from (budget, spent)


def _own(key: ClientKey) -> tuple[str, KeyLimits | None]:
    return key.name, key.limits


def _team(key: ClientKey) -> tuple[str, KeyLimits | None]:
    return ("", None) if key.team is None else (key.team.name, key.team.limits)


def _budgets(
    keys: Iterable[ClientKey],
    now: float,
    holder: Callable[[ClientKey], tuple[str, KeyLimits | None]],
) -> dict[str, float]:
    """The budget of each holder (the key itself, or its team) of a key that opens the
    gateway at `now`, when it has one, by name."""
    budgets = {}
    for key in keys:
        name, limits = holder(key)
        if limits is not None and limits.budget is not None and not key.expired(now):
            budgets[name] = limits.budget
    return budgets
