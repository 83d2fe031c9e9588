"""TaskClassifier: training, probabilities, persistence, explanations."""

import json
import math
from pathlib import Path

import pytest

from hxgw.routing.learned import features
from hxgw.routing.learned.classifier import LABELS, TaskClassifier, load_default
from hxgw.routing.learned.dataset import Example

TINY = [
    Example("write a python function that sorts a list", "coding"),
    Example("fix this javascript bug in my loop", "coding"),
    Example("my python script crashes with a TypeError", "coding"),
    Example("translate good morning into french", "translation"),
    Example("how do you say thank you in german", "translation"),
    Example("translate this sentence to spanish please", "translation"),
    Example("solve 2x + 3 = 7 for x", "math"),
    Example("what is the integral of x squared", "math"),
    Example("find the derivative of sin x", "math"),
]


@pytest.fixture(scope="module", params=["naive-bayes", "logistic"])
def tiny(request: pytest.FixtureRequest) -> TaskClassifier:
    return TaskClassifier.train(TINY, method=request.param)


def test_training_on_a_tiny_set_predicts_the_expected_labels(tiny: TaskClassifier) -> None:
    assert tiny.predict("please translate this into german") == "translation"
    assert tiny.predict("write a javascript function") == "coding"
    assert tiny.predict("solve for x: 5x = 20") == "math"


def test_labels_follow_the_canonical_order(tiny: TaskClassifier) -> None:
    assert tiny.labels == ("coding", "math", "translation")


@pytest.mark.parametrize("text", ["", "x", "translate " * 3000, "∫ π ² 中文 ```"])
def test_probabilities_sum_to_one(tiny: TaskClassifier, text: str) -> None:
    proba = tiny.predict_proba(text)
    assert set(proba) == set(tiny.labels)
    assert math.isclose(sum(proba.values()), 1.0, abs_tol=1e-9)
    assert all(0.0 <= p <= 1.0 for p in proba.values())


def test_save_then_load_gives_identical_predictions(tiny: TaskClassifier, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    tiny.save(path)
    loaded = TaskClassifier.load(path)
    for text in ["translate into french", "sort a list in python", "integral of x", "hello"]:
        assert loaded.predict_proba(text) == tiny.predict_proba(text)


def test_saved_model_holds_only_buckets_seen_in_training(
    tiny: TaskClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "model.json"
    tiny.save(path)
    stored = json.loads(path.read_text())["weights"]
    seen = {b for e in TINY for b in features.extract(e.text)}
    assert {int(b) for b in stored} == seen


def test_load_refuses_a_model_of_another_format(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a hxgw-task-classifier"):
        TaskClassifier.load(path)


def test_scores_equal_the_plain_sum_of_feature_weights(tiny: TaskClassifier) -> None:
    text = "Translate this Python function to German, please: def f(x): return x"
    found = features.extract(text)
    factor = 1 / math.sqrt(len(found)) if tiny.norm == "sqrt" else 1.0
    expected = list(tiny.bias)
    for k in range(len(expected)):
        evidence = sum(tiny.weights[b][k] for b in found if b in tiny.weights)
        expected[k] = (expected[k] + evidence * factor) / tiny.temperature
    assert tiny.scores(text) == pytest.approx(expected, abs=1e-5)


def test_cached_and_uncached_scores_agree(tiny: TaskClassifier) -> None:
    text = "how do you say sort a list in french"
    first = tiny.scores(text)
    tiny.clear_cache()
    assert tiny.scores(text) == first


def test_scores_do_not_depend_on_what_was_scored_before(tiny: TaskClassifier) -> None:
    text = "how do you say sort a list in french"
    first = tiny.scores(text)
    tiny.scores("write a javascript function " * 50)
    assert tiny.scores(text) == first


def test_top_features_name_the_words_behind_a_label(tiny: TaskClassifier) -> None:
    top = tiny.top_features("please translate this", "translation", n=3)
    assert len(top) == 3
    assert top[0][1] >= top[1][1] >= top[2][1] > 0
    assert any("translate" in name for name, _ in top)


@pytest.mark.parametrize("text", ["你好" * 2000, "x" * 9000, "word " * 900])
def test_scores_of_huge_prompts_equal_the_plain_sum(tiny: TaskClassifier, text: str) -> None:
    found = features.extract(text)
    factor = 1 / math.sqrt(len(found)) if tiny.norm == "sqrt" else 1.0
    for k, score in enumerate(tiny.scores(text)):
        evidence = sum(tiny.weights[b][k] for b in found if b in tiny.weights)
        assert score == pytest.approx(
            (tiny.bias[k] + evidence * factor) / tiny.temperature, abs=1e-4
        )


def test_the_shipped_model_knows_exactly_the_canonical_labels() -> None:
    # The config checks specializations against LABELS without building the model.
    assert load_default().labels == LABELS
