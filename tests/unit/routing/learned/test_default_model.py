"""The shipped model loads from package data and gets obvious prompts right."""

from pathlib import Path

import pytest

from hxgw.routing.learned.classifier import LABELS, load_default
from hxgw.tools.router_eval.evaluate import evaluate, format_report

OBVIOUS = {
    "Write a Python function that merges two dictionaries.": "coding",
    "Solve for x: 3x + 7 = 22": "math",
    "Translate 'where is the station' into German.": "translation",
    "Summarize this article in three bullet points: The council approved the budget.": (
        "summarization"
    ),
    "Write a short poem about the sea for my mother's birthday card.": "writing",
    "hey, how's your day going?": "chat",
    "What are the pros and cons of expanding into a second market next year?": "analysis",
}


def test_default_model_is_loaded_once() -> None:
    assert load_default() is load_default()


def test_default_model_knows_the_seven_labels() -> None:
    assert load_default().labels == LABELS


@pytest.mark.parametrize(("text", "label"), OBVIOUS.items())
def test_default_model_classifies_obvious_prompts(text: str, label: str) -> None:
    assert load_default().predict(text) == label


def test_evaluate_reports_per_label_scores_and_latency(tmp_path: Path) -> None:
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(
        '{"text": "Solve for x: 3x + 7 = 22", "label": "math"}\n'
        '{"text": "Translate cat into French", "label": "translation"}\n'
    )
    report = evaluate(load_default(), heldout)
    assert report.scores["math"].recall == 1.0
    assert report.prompts == 2
    assert 0 < report.latency.warm[0] <= report.latency.warm[1]
    assert "macro-F1" in format_report(report)
