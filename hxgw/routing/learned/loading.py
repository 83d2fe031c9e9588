"""The task classifier ml-based-routing uses: the shipped one, or one named in routing.yaml.

Loading is cached by path and modification time, so a reload re-reads a
retrained model file and never re-reads an unchanged one.
"""

from __future__ import annotations

import functools
from pathlib import Path

from hxgw.routing.learned.classifier import TaskClassifier, load_default


def load_classifier(path: Path | None) -> TaskClassifier:
    if path is None:
        return load_default()
    return _load(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> TaskClassifier:
    return TaskClassifier.load(path)
