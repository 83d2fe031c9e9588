"""Labelled prompts in JSONL: one ``{"text": ..., "label": ...}`` per line.

Why a module of its own: training and evaluation must read files the same way,
and a bad line must be reported with its number, not as a traceback.
"""

import json
from pathlib import Path
from typing import NamedTuple


class Example(NamedTuple):
    """One labelled prompt."""

    text: str
    label: str


class DatasetError(ValueError):
    """A line of a dataset file that is not a labelled prompt."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.line = line


def parse_line(raw: str, path: str, line: int) -> Example:
    """One JSONL line as an example; extra keys (e.g. a source tag) are ignored."""
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DatasetError(path, line, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(item, dict):
        raise DatasetError(path, line, "expected an object with 'text' and 'label'")
    text, label = item.get("text"), item.get("label")
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(path, line, "'text' must be a non-empty string")
    if not isinstance(label, str) or not label.strip():
        raise DatasetError(path, line, "'label' must be a non-empty string")
    return Example(text, label.strip())


def read_examples(path: str | Path) -> list[Example]:
    """All examples of a file, skipping blank lines; raises ``DatasetError``. A UTF-8 byte
    order mark, which spreadsheet exports begin with, is read past."""
    name = str(path)
    with open(path, encoding="utf-8-sig") as handle:
        examples = [
            parse_line(raw, name, number)
            for number, raw in enumerate(handle, start=1)
            if raw.strip()
        ]
    if not examples:
        raise DatasetError(name, 0, "no examples")
    return examples
