"""train.main: validation with line numbers, then a model that loads."""

import json
from pathlib import Path

import pytest

from hxgw.routing.learned.classifier import TaskClassifier
from hxgw.tools import train_router as train

GOOD = [
    {"text": "translate hello to french", "label": "translation"},
    {"text": "write a python loop", "label": "coding"},
    {"text": "how do you say cat in spanish", "label": "translation"},
    {"text": "fix my javascript function", "label": "coding"},
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_malformed_line_is_rejected_with_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(
        tmp_path / "data.jsonl",
        [json.dumps(GOOD[0]), json.dumps(GOOD[1]), '{"text": "oops", "label": }'],
    )
    assert train.main([str(data), "-o", str(tmp_path / "m.json")]) == 1
    assert f"{data}:3: invalid JSON" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_a_line_without_a_label_is_rejected_with_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(tmp_path / "data.jsonl", [json.dumps(GOOD[0]), '{"text": "no label"}'])
    assert train.main([str(data), "-o", str(tmp_path / "m.json")]) == 1
    assert f"{data}:2: 'label' must be a non-empty string" in capsys.readouterr().err


def test_a_single_label_dataset_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(tmp_path / "data.jsonl", [json.dumps(GOOD[0]), json.dumps(GOOD[2])])
    assert train.main([str(data), "-o", str(tmp_path / "m.json")]) == 1
    assert "at least two labels" in capsys.readouterr().err


def test_a_missing_file_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train.main([str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "m.json")]) == 1
    assert "nope.jsonl" in capsys.readouterr().err


def test_training_writes_a_loadable_model_and_reports_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(tmp_path / "data.jsonl", [json.dumps(row) for row in GOOD] + [""])
    model_path = tmp_path / "m.json"
    assert train.main([str(data), "-o", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "coding" in out and "translation" in out and "trained naive-bayes in" in out
    assert TaskClassifier.load(model_path).predict("translate dog to french") == "translation"
