"""Whose fault a 500 was: every candidate's alike is the request's; else each model's."""

from __future__ import annotations

from hxgw.config import Model
from hxgw.pipeline.failover.blame import Blame
from hxgw.pipeline.failover.failures import Failure
from hxgw.routing.health import HealthSettings, ModelHealth

SETTINGS = HealthSettings(breaker_failures=1, breaker_cooldown=60)


def _model(name: str) -> Model:
    return Model(name=name, tier_score=0.5, specializations=(), upstream_model=f"m-{name}")


def _five_hundreds(blame: Blame, *said: str) -> tuple[list[ModelHealth], list[Failure]]:
    """Each candidate sent out and answered a 500 saying `said`, its own name in it."""
    healths, failed = [], []
    for index, message in enumerate(said):
        model = _model(f"model{index}")
        health = ModelHealth(name=model.name, settings=SETTINGS)
        held = blame.hold(health, health.started(now=0.0), model)
        held.heard(message.format(model=model.upstream_model))
        healths.append(health)
        failed.append(Failure(model.name, message, 500))
    return healths, failed


def test_alike_500s_from_every_candidate_blame_no_model():
    blame = Blame()
    healths, failed = _five_hundreds(blame, "Invalid tool choice. Received Model Group={model}",
                                     "Invalid tool choice. Received Model Group={model}")
    blame.settle(failed, served=False)
    assert [(h.circuit, h.inflight, h.error_rate) for h in healths] == [("closed", 0, 0.0)] * 2


def test_alike_500s_of_a_request_another_candidate_served_blame_each_model():
    blame = Blame()
    healths, failed = _five_hundreds(blame, "broken {model}", "broken {model}")
    blame.settle(failed, served=True)
    assert [(h.circuit, h.inflight) for h in healths] == [("open", 0)] * 2


def test_the_500_of_the_only_candidate_tried_blames_its_model():
    # A group's last model standing (the others' circuits open): nothing to compare its
    # 500 with, so it counts, or a broken model would never be taken out.
    blame = Blame()
    healths, failed = _five_hundreds(blame, "broken {model}")
    blame.settle(failed, served=False)
    assert [h.circuit for h in healths] == ["open"]


def test_500s_that_differ_blame_each_model():
    blame = Blame()
    healths, failed = _five_hundreds(blame, "pool exhausted", "out of memory")
    blame.settle(failed, served=False)
    assert [h.circuit for h in healths] == ["open", "open"]


def test_alike_500s_beside_another_failure_blame_each_model():
    blame = Blame()
    healths, failed = _five_hundreds(blame, "broken", "broken")
    blame.settle([*failed, Failure("model2", "timeout")], served=False)
    assert [h.circuit for h in healths] == ["open", "open"]


def test_500s_whose_answers_could_not_be_read_blame_each_model():
    blame = Blame()
    healths, failed = [], []
    for name in ("alpha", "beta"):
        health = ModelHealth(name=name, settings=SETTINGS)
        blame.hold(health, health.started(now=0.0), _model(name)).heard(None)
        healths.append(health)
        failed.append(Failure(name, None, 500))
    blame.settle(failed, served=False)
    assert [h.circuit for h in healths] == ["open", "open"]


def test_a_held_500_is_no_stall_while_its_verdict_waits():
    blame, model = Blame(), _model("alpha")
    health = ModelHealth(name="alpha", settings=SETTINGS)
    blame.hold(health, health.started(now=0.0), model)
    assert not health.stalled(now=3600.0)
