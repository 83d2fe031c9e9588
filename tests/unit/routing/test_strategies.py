"""Each strategy's ordering, the circuit and context rules, and ml-based scoring."""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Any

import pytest

from hxgw.config import ClientKey, Config, Model, load_config
from hxgw.errors import BadRequest
from hxgw.routing.decision import Route, decide, estimate_parts
from hxgw.routing.routes import Routes
from hxgw.routing.strategies import EXPLORE_EVERY, Memory, explore
from tests.fixtures import write_config


class FixedTask:
    """A stand-in classifier with a known answer, to test the scoring around it."""

    def __init__(self, **probabilities: float) -> None:
        self.probabilities = probabilities

    def predict_proba(self, text: str) -> dict[str, float]:
        return dict(self.probabilities)


def _model(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "tier_score": 0.5, "specializations": [], **kw}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    models = [
        _model("coder", tier_score=0.6, specializations=["coding"], weight=3, cost=2.0),
        _model("writer", tier_score=0.6, specializations=["writing", "chat"], weight=1),
        _model("small", tier_score=0.9, max_context=100),
    ]
    routing = {"routing": {"strategy": "failover", "default_group": "g",
                           "groups": {"g": ["coder", "writer", "small"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing)
    return load_config(tmp_path, {"MASTER_KEY": "k"})


def _route(config: Config) -> Route:
    models = tuple(config.models[n] for n in ("coder", "writer", "small"))
    return Route(group="g", pinned=False, candidates=models, own=3)


def _order(config: Config, strategy: str, memory: Memory | None = None,
           body: dict[str, Any] | None = None, classifier: Any = None) -> list[str]:
    config = _with_strategy(config, strategy)
    decision = decide(config, _route(config), body or {}, memory or Memory(), classifier)
    return [m.name for m in decision.candidates]


def _with_strategy(config: Config, strategy: str) -> Config:
    import dataclasses
    return dataclasses.replace(config, routing=dataclasses.replace(config.routing,
                                                                   strategy=strategy))


def test_failover_keeps_the_group_order(config: Config):
    assert _order(config, "failover") == ["coder", "writer", "small"]


def test_round_robin_starts_one_further_each_time(config: Config):
    memory = Memory()
    firsts = [_order(config, "round-robin", memory)[0] for _ in range(4)]
    assert firsts == ["coder", "writer", "small", "coder"]


def test_round_robin_tries_the_rest_in_the_group_s_order_after_the_first(config: Config):
    memory = Memory()
    orders = [_order(config, "round-robin", memory) for _ in range(3)]
    assert orders[2] == ["small", "coder", "writer"]


def test_weighted_puts_heavier_models_first_in_proportion(config: Config):
    memory = Memory(rng=random.Random(7))
    firsts = [_order(config, "weighted", memory)[0] for _ in range(2000)]
    share = firsts.count("coder") / len(firsts)
    assert 0.55 < share < 0.65  # weight 3 of 5


def test_least_busy_puts_the_fewest_in_flight_first(config: Config):
    memory = Memory()
    memory.health["coder"].started()
    memory.health["writer"].started()
    memory.health["writer"].started()
    assert _order(config, "least-busy", memory) == ["small", "coder", "writer"]


def test_least_busy_takes_idle_models_in_turn(config: Config):
    memory = Memory()
    firsts = [_order(config, "least-busy", memory)[0] for _ in range(4)]
    assert firsts == ["coder", "writer", "small", "coder"]


def test_latency_now_and_then_puts_each_slower_model_first_to_measure_it_again(
    config: Config,
):
    memory = Memory()
    for name, seconds in (("small", 0.05), ("writer", 0.1), ("coder", 0.5)):
        memory.health[name].first_byte(seconds)
    firsts = [_order(config, "latency", memory)[0] for _ in range(4 * EXPLORE_EVERY)]
    # Before, a model once slow was never first again, so never measured again.
    assert firsts.count("small") == 4 * EXPLORE_EVERY - 4
    assert (firsts.count("writer"), firsts.count("coder")) == (2, 2)


def test_a_group_of_two_now_and_then_puts_its_other_model_first(config: Config):
    memory, two = Memory(), [config.models["small"], config.models["writer"]]
    firsts = [explore(list(two), "g", memory)[0].name for _ in range(EXPLORE_EVERY)]
    assert firsts == ["small"] * (EXPLORE_EVERY - 1) + ["writer"]


def test_latency_puts_the_fastest_first_and_unmeasured_models_before_them(config: Config):
    memory = Memory()
    memory.health["coder"].first_byte(0.5)
    memory.health["writer"].first_byte(0.1)
    assert _order(config, "latency", memory) == ["small", "writer", "coder"]


def test_latency_ranks_a_stream_by_time_to_first_byte_and_a_plain_answer_by_its_wait(
    config: Config,
):
    # One old stream's quick first byte had put a model whose plain answers take 20 s
    # before one whose take 2 s, for plain requests too.
    memory = Memory()
    memory.health["writer"].first_byte(0.5)
    memory.health["writer"].first_byte(20.0, timed=False)
    memory.health["coder"].first_byte(2.0, timed=False)
    memory.health["small"].first_byte(9.0, timed=False)
    assert _order(config, "latency", memory) == ["coder", "small", "writer"]
    streamed = {"stream": True}
    assert _order(config, "latency", memory, streamed) == ["writer", "coder", "small"]


def test_latency_spreads_requests_over_unmeasured_models_while_their_first_is_out(
    config: Config,
):
    # Every request went to the first unmeasured model until its first byte came back:
    # a burst at start, or after a reload added models, herded onto one model.
    memory = Memory()
    firsts = []
    for _ in range(6):
        first = _order(config, "latency", memory)[0]
        memory.health[first].started(time.monotonic())
        firsts.append(first)
    assert firsts == ["coder", "writer", "small"] * 2


def test_round_robin_turns_of_one_mode_do_not_move_another_mode_s(tmp_path: Path):
    # A group with chat and embedding models kept one turn for both: chat requests
    # alternating with embeddings started on the same chat model every time.
    routing = {"routing": {"strategy": "round-robin", "default_group": "mixed",
                           "groups": {"mixed": ["alpha", "embed", "beta"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing)
    config = load_config(tmp_path, {"MASTER_KEY": "k"})
    routes, memory, key = Routes(config), Memory(), ClientKey(name="k", digest=b"x" * 32)
    firsts = []
    for _ in range(4):
        for mode in ("chat", "embedding"):
            route = routes.resolve(None, "mixed", key, mode)  # type: ignore[arg-type]
            firsts.append(decide(config, route, {}, memory, None).candidates[0].name)
    assert firsts[::2] == ["alpha", "beta", "alpha", "beta"]


def test_an_open_circuit_is_skipped(config: Config):
    memory = Memory()
    for _ in range(5):
        memory.health["coder"].started()
        memory.health["coder"].failed(time.monotonic())
    decision = decide(config, _route(config), {}, memory, None)
    assert [m.name for m in decision.candidates] == ["writer", "small"]
    assert ("coder", "circuit open") in decision.skipped


def test_when_every_circuit_is_open_only_the_one_free_soonest_is_tried(config: Config):
    memory = Memory()
    for name in ("coder", "small", "writer"):  # writer's opens last, so it is free last
        for _ in range(5):
            memory.health[name].started()
            memory.health[name].failed(time.monotonic())
    memory.health["small"].open_until -= 5  # its cool-down ends first
    decision = decide(config, _route(config), {}, memory, None)
    assert [m.name for m in decision.candidates] == ["small"]
    assert {name for name, why in decision.skipped if why == "circuit open"} == {
        "coder", "writer"}


def test_a_prompt_longer_than_a_models_context_never_goes_to_it(config: Config):
    body = {"messages": [{"role": "user", "content": "word " * 200}]}
    assert _order(config, "failover", body=body) == ["coder", "writer"]


def test_max_tokens_counts_toward_the_context(config: Config):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 150}
    assert sum(estimate_parts(body)) == sum(estimate_parts({"messages": body["messages"]})) + 150
    assert "small" not in _order(config, "failover", body=body)


@pytest.mark.parametrize("answer", [
    {"max_tokens": "150"},  # as a lenient upstream reads it, and the key's limits do
    {"max_completion_tokens": 150, "max_tokens": 10},  # the new name first, as vLLM reads it
    {"max_completion_tokens": None, "max_tokens": 150},  # a null new name: the old one
])
def test_the_answer_allowed_counts_toward_the_context_as_an_upstream_reads_it(
    config: Config, answer: dict[str, object]
):
    body = {"messages": [{"role": "user", "content": "hi"}], **answer}
    assert estimate_parts(body)[1] == 150
    assert "small" not in _order(config, "failover", body=body)


def test_the_new_name_counts_toward_the_context_not_the_largest(config: Config):
    # vLLM and SGLang obey max_completion_tokens over max_tokens: the largest had kept the
    # request off a model whose context it fits.
    body = {"messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 10, "max_tokens": 150}
    assert estimate_parts(body)[1] == 10
    assert "small" in _order(config, "failover", body=body)


TEXT = "x" * 4000  # about 1000 tokens


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "user", "content": TEXT}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": TEXT}]}]},
    {"input": [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": TEXT}]}]},
    {"input": [{"role": "user", "content": TEXT}]},
    {"input": "hi", "instructions": TEXT},
    {"messages": [{"role": "user", "content": "hi"}], "system": TEXT},
    {"messages": [{"role": "user", "content": "hi"}],
     "system": [{"type": "text", "text": TEXT}]},
    {"prompt": [1] * 1000},
    {"prompt": [[1] * 500, [2] * 500]},
    {"input": "hi", "max_output_tokens": 1000},
    {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": TEXT}]}]},
    {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": TEXT}]}
    ]}]},
    {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": TEXT}}]}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "f", "description": TEXT}}]},
    {"input": [{"type": "function_call_output", "call_id": "c1", "output": TEXT}]},
    {"messages": [{"role": "user", "content": "data: [DONE]" + TEXT}]},
    {"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"data": TEXT}}]}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"properties": {"data": {"description": TEXT}}}}}]},
], ids=["chat", "chat-parts", "responses-items", "responses-messages", "instructions",
        "anthropic-system", "anthropic-system-blocks", "token-ids", "token-id-batches",
        "max-output-tokens", "anthropic-tool-result", "anthropic-tool-result-blocks",
        "chat-tool-call-arguments", "tool-definitions", "responses-function-output",
        "a-pasted-event-log", "tool-arguments-named-data", "tool-parameter-named-data"])
def test_every_shape_of_a_long_request_counts_toward_the_context(body: dict[str, Any]):
    assert sum(estimate_parts(body)) >= 990


@pytest.mark.parametrize("image", [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + TEXT}},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": TEXT}},
    {"type": "input_audio", "input_audio": {"data": TEXT, "format": "wav"}},
    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,"
                              + TEXT}},
    {"type": "input_image", "image_url": "data:image/jpeg;charset=x;base64," + TEXT},
], ids=["data-url", "anthropic-base64", "audio", "file", "responses-image"])
def test_media_sent_inline_is_not_counted_as_text(image: dict[str, Any]):
    body = {"messages": [{"role": "user", "content": [image]}]}
    assert sum(estimate_parts(body)) < 50


def test_a_request_nested_deeper_than_python_recursion_is_counted_not_a_crash():
    deep: Any = "x" * 40
    for _ in range(5000):
        deep = [deep]
    assert sum(estimate_parts({"messages": [{"role": "user", "content": deep}]})) >= 10


def test_a_pinned_model_too_small_for_the_prompt_is_a_bad_request(config: Config):
    route = Route(group=None, pinned=True, candidates=(config.models["small"],), own=1)
    with pytest.raises(BadRequest, match="prompt is too long: 250 tokens > 100 maximum "):
        decide(config, route, {"prompt": "x" * 1000}, Memory(), None)


def test_a_prompt_that_fits_but_not_with_its_max_tokens_is_told_so_in_anthropic_s_words(
    config: Config,
):
    # "prompt is too long" sends Claude Code to compacting the conversation; lowering
    # max_tokens is the fix here.
    route = Route(group=None, pinned=True, candidates=(config.models["small"],), own=1)
    body = {"prompt": "x" * 200, "max_tokens": 500}
    # The figures bare, followed by a comma, as Anthropic's: Claude Code reads them back.
    with pytest.raises(BadRequest, match=r"input length and `max_tokens` exceed context "
                                         r"limit: 50 \+ 500 > 100, decrease"):
        decide(config, route, body, Memory(), None)


def test_a_prompt_and_max_tokens_that_fill_the_context_exactly_fit(config: Config):
    route = Route(group=None, pinned=True, candidates=(config.models["small"],), own=1)
    body = {"prompt": "x" * 200, "max_tokens": 50}  # 50 + 50 tokens of 100
    assert [m.name for m in decide(config, route, body, Memory(), None).candidates] == ["small"]


def test_a_prompt_too_long_for_the_group_s_own_models_goes_to_a_failover_order_one(
        config: Config):
    route = Route(group="g", pinned=False, own=1,
                  candidates=(config.models["small"], config.models["coder"]))
    decision = decide(config, route, {"prompt": "x" * 1000}, Memory(), None)
    assert [m.name for m in decision.candidates] == ["coder"]


def test_a_prompt_no_candidate_fits_is_told_the_largest_context_of_them(config: Config):
    larger = dataclasses.replace(config.models["writer"], max_context=200)
    route = Route(group="g", pinned=False, own=2, candidates=(config.models["small"], larger))
    with pytest.raises(BadRequest, match="1000 tokens > 200 maximum"):
        decide(config, route, {"prompt": "x" * 4000}, Memory(), None)


def test_a_route_that_only_counts_tokens_refuses_no_prompt_for_its_size(config: Config):
    route = Route(group=None, pinned=True, candidates=(config.models["small"],), own=1)
    decision = decide(config, route, {"prompt": "x" * 1000}, Memory(), None, sized=False)
    assert [m.name for m in decision.candidates] == ["small"]


def test_ml_routing_prefers_the_model_specialized_in_the_detected_task(config: Config):
    coding = FixedTask(coding=0.9, writing=0.05, chat=0.05)
    assert _order(config, "ml-based-routing", classifier=coding)[0] == "coder"
    writing = FixedTask(coding=0.05, writing=0.9, chat=0.05)
    assert _order(config, "ml-based-routing", classifier=writing)[0] == "writer"


def test_ml_routing_without_a_task_signal_prefers_the_higher_tier(config: Config):
    assert _order(config, "ml-based-routing", classifier=FixedTask(math=1.0))[0] == "small"


def test_ml_routing_moves_away_from_a_failing_or_slow_model(config: Config):
    memory = Memory()
    for _ in range(4):
        memory.health["coder"].started()
        memory.health["coder"].failed(time.monotonic())
        memory.health["writer"].started()
        memory.health["writer"].succeeded(0.1)
    memory.health["coder"].first_byte(2.0)
    memory.health["writer"].first_byte(0.1)
    coding = FixedTask(coding=0.6, chat=0.4)
    assert _order(config, "ml-based-routing", memory, classifier=coding)[0] == "writer"


def test_ml_routing_now_and_then_puts_a_model_it_moved_away_from_first_again(
    config: Config,
):
    # A model that failed once had no request again, so its error rate never recovered.
    memory = Memory()
    memory.health["coder"].started()
    memory.health["coder"].failed(time.monotonic())
    coding = FixedTask(coding=0.6, chat=0.4)
    firsts = [_order(config, "ml-based-routing", memory, classifier=coding)[0]
              for _ in range(4 * EXPLORE_EVERY)]
    assert firsts.count("coder") == 2 and firsts[EXPLORE_EVERY - 1] != firsts[0]


def test_ml_routing_explains_each_candidate(config: Config):
    decision = decide(_with_strategy(config, "ml-based-routing"), _route(config), {}, Memory(),
                      FixedTask(coding=1.0))
    best = decision.scored[0]
    assert best.model.name == "coder"
    assert any(r.startswith("fits task with p=1.00") for r in best.reasons)
    assert any(r.startswith("cost 2") for r in best.reasons)
    assert decision.header() == (
        "strategy=ml-based-routing; task=coding; p=1.00; chosen=coder; runner_up=small")


def test_ml_routing_weighs_each_measure_against_the_candidates_largest(config: Config):
    # The slowest, the dearest and the busiest candidate each lose the whole weight.
    memory = Memory()
    for name, seconds, inflight in (("coder", 2.0, 1), ("writer", 4.0, 2)):
        memory.health[name].first_byte(seconds)
        for _ in range(inflight):
            memory.health[name].started()
    decision = decide(_with_strategy(config, "ml-based-routing"), _route(config), {}, memory,
                      FixedTask(chat=1.0))
    terms = {s.model.name: {t: v for t, v, _ in s.terms} for s in decision.scored}
    w = config.routing.scoring
    assert terms["writer"]["ttfb"] == -w.latency and terms["coder"]["ttfb"] == -w.latency / 2
    assert terms["coder"]["cost"] == -w.cost
    assert terms["writer"]["load"] == -w.load and terms["coder"]["load"] == -w.load / 2


def test_the_header_of_a_plain_strategy_names_chosen_and_runner_up(config: Config):
    decision = decide(config, _route(config), {}, Memory(), None)
    assert decision.header() == "strategy=failover; chosen=coder; runner_up=writer"


def _failover_route(tmp_path: Path) -> tuple[Config, Route]:
    models = [_model("a"), _model("b")]
    routing = {"routing": {"strategy": "failover", "default_group": "g",
                           "groups": {"g": ["a", "b"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing)
    config = load_config(tmp_path, {"MASTER_KEY": "k"})
    return config, Routes(config).resolve(None, "g", config.keys[0], None)


def test_a_failover_route_is_decided_once_as_the_strategy_would_decide_each_time(
        tmp_path: Path):
    config, route = _failover_route(tmp_path)
    assert route.fixed is not None
    assert decide(config, route, {}, Memory(), None) is route.fixed
    each_time = decide(config, dataclasses.replace(route, fixed=None), {}, Memory(), None)
    assert route.fixed[:5] == each_time[:5]
    assert route.fixed.header() == each_time.header() == "strategy=failover; chosen=a; runner_up=b"


def test_a_failover_route_decided_once_still_skips_a_model_whose_circuit_opened(
        tmp_path: Path):
    config, route = _failover_route(tmp_path)
    memory = Memory()
    for _ in range(5):
        memory.health["a"].started()
        memory.health["a"].failed(time.monotonic())
    decision = decide(config, route, {}, memory, None)
    assert [m.name for m in decision.candidates] == ["b"]
    assert decision.header() == "strategy=failover; chosen=b; skipped=a"


def test_a_failover_route_with_a_max_context_still_keeps_a_long_prompt_off_it(
        tmp_path: Path):
    models = [_model("a", max_context=100), _model("b")]
    routing = {"routing": {"strategy": "failover", "default_group": "g",
                           "groups": {"g": ["a", "b"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing)
    config = load_config(tmp_path, {"MASTER_KEY": "k"})
    route = Routes(config).resolve(None, "g", config.keys[0], None)
    decision = decide(config, route, {"prompt": "x" * 1000}, Memory(), None)
    assert [m.name for m in decision.candidates] == ["b"]


def test_a_group_strategy_overrides_the_default(tmp_path: Path):
    models = [_model("a"), _model("b")]
    routing = {"routing": {"strategy": "failover", "default_group": "g",
                           "groups": {"g": {"models": ["a", "b"], "strategy": "round-robin"}}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing)
    config = load_config(tmp_path, {"MASTER_KEY": "k"})
    route = Route(group="g", pinned=False,
                  candidates=(config.models["a"], config.models["b"]), own=2)
    memory = Memory()
    orders = [decide(config, route, {}, memory, None).candidates[0].name for _ in range(2)]
    assert orders == ["a", "b"]


def test_fallbacks_from_failover_order_stay_after_the_group(config: Config):
    models: tuple[Model, ...] = (config.models["writer"], config.models["coder"])
    route = Route(group="g", pinned=False, candidates=models, own=1)
    decision = decide(_with_strategy(config, "ml-based-routing"), route, {}, Memory(),
                      FixedTask(coding=1.0))
    assert [m.name for m in decision.candidates] == ["writer", "coder"]


def test_ml_routing_terms_add_up_to_the_score(config: Config):
    memory = Memory()
    memory.health["coder"].started()
    memory.health["writer"].first_byte(0.3)
    decision = decide(_with_strategy(config, "ml-based-routing"), _route(config), {}, memory,
                      FixedTask(coding=0.7, writing=0.3))
    for scored in decision.scored:
        assert scored.score == sum(value for _, value, _ in scored.terms)


class CountingTask(FixedTask):
    """A classifier that counts what it is asked."""

    asked = 0

    def predict_proba(self, text: str) -> dict[str, float]:
        self.asked += 1
        return super().predict_proba(text)


def test_ml_routing_asks_the_classifier_nothing_of_an_embedding(tmp_path: Path):
    # An embedding's input is text to turn into numbers: the header had said `task=chat`.
    routing = {"routing": {"strategy": "ml-based-routing", "default_group": "g",
                           "groups": {"g": ["coder"], "emb": ["vectors"]}}}
    models = [_model("coder", specializations=["coding"]),
              _model("vectors", mode="embedding")]
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing)
    config = load_config(tmp_path, {"MASTER_KEY": "k"})
    route = Routes(config).resolve("emb", None, ClientKey(name="any", digest=b"x"), "embedding")
    classifier = CountingTask(chat=1.0)
    decision = decide(config, route, {"input": "hello"}, Memory(), classifier)
    assert (classifier.asked, decision.header()) == (0, "strategy=ml-based-routing; chosen=vectors")
