"""The routing simulation behind `make eval-router`: deterministic, and its figures right."""

import dataclasses
import math

import pytest

from hxgw.config.schema import HealthSettings
from hxgw.routing.learned.dataset import Example, read_examples
from hxgw.tools.router_eval.evaluate import DEFAULT_HELDOUT
from hxgw.tools.router_eval.simulate import (
    MODELS,
    FakeModel,
    Outcome,
    Run,
    Scenario,
    request_stream,
    simulate,
)
from hxgw.tools.router_eval.summary import specialization_match, summarize

HELDOUT = read_examples(DEFAULT_HELDOUT)
TINY_PROMPTS = [
    Example("write a python function that reverses a list", "coding"),
    Example("fix the off-by-one bug in this loop", "coding"),
    Example("why does my rust code not compile", "coding"),
    Example("hey, how was your weekend?", "chat"),
]
CODER = FakeModel(name="a", specializations=("coding",), tier_score=0.9, cost=1, weight=1,
                  ttfb=0.1, rest=0.5, error_rate=0.0, capacity=100)  # fmt: skip
CHATTER = dataclasses.replace(CODER, name="b", specializations=("chat",))


def _without_timings(run: Run) -> list[Outcome]:
    return [dataclasses.replace(o, route_us=0.0, route_cpu_us=0.0) for o in run.outcomes]


@pytest.mark.parametrize("strategy", ["weighted", "ml-based-routing"])
def test_a_run_is_the_same_for_the_same_seed(strategy: str):
    scenario = Scenario(requests=400, fail_mode="timeout")
    stream = request_stream(scenario, HELDOUT)
    first, second = simulate(scenario, strategy, stream), simulate(scenario, strategy, stream)
    assert _without_timings(first) == _without_timings(second)
    assert first.breaker_open_at == second.breaker_open_at


def test_another_seed_gives_another_stream():
    one = request_stream(Scenario(requests=50, seed=1), HELDOUT)
    two = request_stream(Scenario(requests=50, seed=2), HELDOUT)
    assert [r.text for r in one] != [r.text for r in two]


def test_ml_routing_avoids_a_failing_model_once_its_breaker_opens():
    scenario = Scenario(requests=1500, failing="writer", fail_mode="5xx")
    stream = request_stream(scenario, HELDOUT)
    run = simulate(scenario, "ml-based-routing", stream)
    assert run.failing_since is not None and run.breaker_open_at is not None
    assert run.breaker_open_at - run.failing_since < 10
    # From then on it only gets the breaker's half-open probes, one per cool-down.
    cooldown = HealthSettings().breaker_cooldown
    probes = math.ceil((stream[-1].at - run.breaker_open_at) / cooldown)
    assert run.tried_after_open <= probes + 1
    after = [o for o in run.outcomes if o.at >= run.breaker_open_at]
    assert all(o.model != "writer" for o in after)
    assert summarize(run).success == 1.0


def test_specialization_match_counts_requests_served_by_a_specialist():
    outcomes = [
        Outcome(0.0, "coding", "a", 1, 0.1, 1.0, 0.0, 0.0),
        Outcome(1.0, "chat", "a", 2, 0.1, 1.0, 0.0, 0.0),
        Outcome(2.0, "chat", "b", 1, 0.1, 1.0, 0.0, 0.0),
        Outcome(3.0, "coding", None, 5, None, None, 0.0, 0.0),
    ]
    assert specialization_match(outcomes, {"a": ("coding",), "b": ("chat",)}) == 0.5


def test_round_robin_match_on_a_hand_made_scenario():
    scenario = Scenario(models=(CODER, CHATTER), requests=40, rate=0.1, failing=None)
    stream = request_stream(scenario, TINY_PROMPTS)
    run = simulate(scenario, "round-robin", stream)
    # One request at a time (10 s apart, 0.6 s each): request i starts on model i % 2.
    assert [o.model for o in run.outcomes] == ["a", "b"] * 20
    wanted = sum(r.label == ("coding", "chat")[r.index % 2] for r in stream) / 40
    assert summarize(run).match == wanted


def test_failover_sends_everything_to_the_first_model_on_a_healthy_run():
    first = dataclasses.replace(MODELS[0], error_rate=0.0, capacity=1000)
    scenario = Scenario(models=(first, *MODELS[1:]), requests=1000, failing=None)
    stream = request_stream(scenario, HELDOUT)
    summary = summarize(simulate(scenario, "failover", stream))
    assert summary.served[first.name] == 1.0 and summary.failovers == 0.0
    assert summary.match == sum(r.label in first.specializations for r in stream) / 1000
