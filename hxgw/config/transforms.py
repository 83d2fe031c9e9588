"""Per-model request body rewrites, declared in model_registry.yaml.

Some upstreams want a field under another name (the seed's embeddings model
takes `prompt`, not `input`), a fixed parameter, or no parameter at all. Each
rewrite is a small frozen object; a model's list is applied in order to a
shallow copy of the body, so the client's parsed body stays intact for the
next failover candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hxgw.config.reader import Problems, kind_of


@dataclass(frozen=True, slots=True, kw_only=True)
class Rename:
    pairs: tuple[tuple[str, str], ...]

    def apply(self, body: dict[str, Any]) -> None:
        for old, new in self.pairs:
            if old in body:
                body[new] = body.pop(old)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetFields:
    pairs: tuple[tuple[str, Any], ...]

    def apply(self, body: dict[str, Any]) -> None:
        for key, value in self.pairs:
            body[key] = value


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    keys: tuple[str, ...]

    def apply(self, body: dict[str, Any]) -> None:
        for key in self.keys:
            body.pop(key, None)


Transform = Rename | SetFields | Drop


def apply_transforms(body: dict[str, Any], transforms: tuple[Transform, ...]) -> dict[str, Any]:
    """Return a rewritten shallow copy of `body`; the original is left untouched."""
    out = dict(body)
    for transform in transforms:
        transform.apply(out)
    return out


def parse_transforms(value: Any, file: str, path: str, problems: Problems) -> tuple[Transform, ...]:
    """Read `[{rename: {A: B}}, {set: {K: V}}, {drop: [K]}]`, reporting each mistake."""
    if not isinstance(value, list):
        problems.add(file, path, f"must be a list of rewrites, got {kind_of(value)}")
        return ()
    out: list[Transform] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            problems.add(file, where, "must be a mapping with one of: rename, set, drop")
            continue
        ((op, arg),) = item.items()
        where = f"{where}.{op}"
        if op in ("rename", "set"):
            if not isinstance(arg, dict) or not arg:
                problems.add(file, where, f"must be a non-empty mapping, got {kind_of(arg)}")
                continue
            if not all(isinstance(k, str) for k in arg):
                problems.add(file, where, "keys must be strings")
                continue
            if op == "rename":
                if not all(isinstance(v, str) and v for v in arg.values()):
                    problems.add(file, where, "new names must be non-empty strings")
                    continue
                out.append(Rename(pairs=tuple(arg.items())))
            elif _values_past(arg, MAX_SET_VALUES):
                problems.add(
                    file,
                    where,
                    f"holds more than {MAX_SET_VALUES} values (YAML aliases can "
                    "make a few lines into millions): each request's body would carry them",
                )
            else:
                out.append(SetFields(pairs=tuple(arg.items())))
        elif op == "drop":
            if not isinstance(arg, list) or not arg or not all(isinstance(k, str) for k in arg):
                problems.add(file, where, "must be a non-empty list of field names")
                continue
            out.append(Drop(keys=tuple(arg)))
        else:
            problems.add(file, where, "unknown rewrite (known: rename, set, drop)")
    return tuple(out)


MAX_SET_VALUES = 10_000
"""The most values a `set` rewrite may hold, nested ones counted: a few lines of YAML
aliases (`&a [*b, *b, ...]`) expand, once encoded, into gigabytes."""


def _values_past(value: Any, most: int) -> bool:
    """Whether `value` holds more than `most` values, counted as a walk that stops there:
    YAML aliases share one object, so the walk never builds what they expand to."""
    left, stack = most, [value]
    while stack:
        item = stack.pop()
        left -= 1
        if left < 0:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
