"""`hxgw train-router`, as installed: validation with line numbers, then a model that loads."""

import json
import subprocess
from pathlib import Path

from hxgw.routing.learned.classifier import TaskClassifier
from tests.fixtures import HXGW

GOOD = [
    {"text": "translate hello to french", "label": "translation"},
    {"text": "write a python loop", "label": "coding"},
    {"text": "how do you say cat in spanish", "label": "translation"},
    {"text": "fix my javascript function", "label": "coding"},
]


def train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HXGW, "train-router", *args], capture_output=True, text=True,
                          timeout=60)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_malformed_line_is_rejected_with_its_line_number(
    tmp_path: Path,
) -> None:
    data = write(
        tmp_path / "data.jsonl",
        [json.dumps(GOOD[0]), json.dumps(GOOD[1]), '{"text": "oops", "label": }'],
    )
    result = train(str(data), "-o", str(tmp_path / "m.json"))
    assert result.returncode == 1
    assert f"{data}:3: invalid JSON" in result.stderr
    assert not (tmp_path / "m.json").exists()


def test_a_line_without_a_label_is_rejected_with_its_line_number(
    tmp_path: Path,
) -> None:
    data = write(tmp_path / "data.jsonl", [json.dumps(GOOD[0]), '{"text": "no label"}'])
    result = train(str(data), "-o", str(tmp_path / "m.json"))
    assert result.returncode == 1
    assert f"{data}:2: 'label' must be a non-empty string" in result.stderr


def test_a_single_label_dataset_is_rejected(
    tmp_path: Path,
) -> None:
    data = write(tmp_path / "data.jsonl", [json.dumps(GOOD[0]), json.dumps(GOOD[2])])
    result = train(str(data), "-o", str(tmp_path / "m.json"))
    assert result.returncode == 1
    assert "at least two labels" in result.stderr


def test_a_missing_file_is_an_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    result = train(str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "m.json"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "nope.jsonl: No such file" in result.stderr
    assert "Errno" not in result.stderr


def test_training_writes_a_loadable_model_and_reports_counts(
    tmp_path: Path,
) -> None:
    data = write(tmp_path / "data.jsonl", [json.dumps(row) for row in GOOD] + [""])
    model_path = tmp_path / "m.json"
    result = train(str(data), "-o", str(model_path))
    assert result.returncode == 0
    out = result.stdout
    assert "coding" in out and "translation" in out and "trained naive-bayes in" in out
    assert TaskClassifier.load(model_path).predict("translate dog to french") == "translation"


def test_a_file_that_begins_with_a_byte_order_mark_trains(tmp_path: Path) -> None:
    # As spreadsheets export UTF-8: it had been refused ("Unexpected UTF-8 BOM").
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in GOOD) + "\n", encoding="utf-8-sig")
    assert train(str(data), "-o", str(tmp_path / "m.json")).returncode == 0


def test_a_label_with_few_examples_is_warned_of_and_the_model_still_written(
    tmp_path: Path,
) -> None:
    data = write(tmp_path / "data.jsonl", [json.dumps(row) for row in GOOD])
    result = train(str(data), "-o", str(tmp_path / "m.json"))
    assert result.returncode == 0 and (tmp_path / "m.json").exists()
    assert "warning: fewer than 20 examples of coding, translation" in result.stderr
