"""A config file read as YAML, its mistakes told with their line and the usual cause,
a key given twice in one mapping among them (YAML keeps the last without a word)."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import yaml

from hxgw.config.reader import Problems


def read_yaml(path: Path, problems: Problems, files: list[Path], *, required: bool) -> Any:
    """The document in `path` (None, its problem added, when it is missing, unreadable or
    not YAML); `files` gets each file read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            problems.add(path.name, "", f"file not found in {path.parent}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path.name, "", f"cannot be read: {exc}")
        return None
    files.append(path)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 -- safe_load's loader, stricter
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problems.add(path.name, where, f"invalid YAML: {reason}{_yaml_hint(reason)}")
        return None
    except RecursionError:  # PyYAML builds nested collections by recursion
        problems.add(path.name, "", "invalid YAML: nested too deeply")
        return None


def _yaml_hint(reason: str) -> str:
    """PyYAML names the token it tripped on, often on the line after the mistake:
    say what the usual mistakes are."""
    if "'\\t'" in reason:
        return " (indent with spaces: YAML allows no tabs)"
    if "mapping values are not allowed" in reason or "<block end>" in reason:
        return (
            " (on this line or the one above: a key without its ':', a line indented"
            " unlike its neighbours, or a value holding ': ' that needs quotes)"
        )
    if "expected ',' or ']'" in reason or "expected ',' or '}'" in reason:
        return " (a '[' or '{' above is never closed)"
    return ""


class _Loader(yaml.SafeLoader):
    """safe_load's loader, but a key given twice in one mapping is an error: YAML keeps
    the last, so a line added below an old one would win without a word."""


def _mapping_once(loader: _Loader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # what `<<` brings in may be overridden: that is what it is for
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"{key!r} is given twice in this mapping", key_node.start_mark
            )
        seen.add(key)
    yield from loader.construct_yaml_map(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping_once)
