"""A small reader for YAML config trees that collects every problem with its place.

Config validation must report all mistakes at once, each naming its file and
key path (`routing.yaml: routing.groups.hx-chat[1]: unknown model 'llm03'`),
so a reader walks the tree and records problems instead of raising on the
first one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from hxgw.errors import did_you_mean

_MISSING: Any = object()


class Problems:
    """The problems found while loading one config snapshot."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, file: str, path: str, message: str) -> None:
        """Said once, however many readers of a section meet it (`auth` has two)."""
        problem = (f"{file}: {path}: " if path else f"{file}: ") + message
        if problem not in self.messages:
            self.messages.append(problem)


_YAML_WORDS = {type(None): "nothing (null)", list: "a list", dict: "a mapping"}
_JSON_WORDS = {type(None): "null", list: "an array", dict: "an object"}


_NAME_BREAKERS = frozenset(';,="\\')


def name_problem(name: str, goes: str = "in response headers") -> str | None:
    """What is wrong with a model's or a group's name, which answers carry in headers
    (X-HX-Model, X-HX-Route, whose parts `;` and `=` separate) and metrics in labels;
    None when nothing is. A client's HTTP library reads a header's other bytes as Latin-1.
    `goes`: where the name goes, for the problem's words (a key's: not in headers)."""
    if (
        name.isascii()
        and name.isprintable()
        and " " not in name
        and _NAME_BREAKERS.isdisjoint(name)
    ):
        return None
    return f'{name!r}: a name goes {goes}: use visible ASCII, without spaces or ; , = " \\'


def fits_a_header(value: str) -> bool:
    """Whether a secret can be sent in an HTTP header as one word (after `Bearer `)."""
    return value.isascii() and value.isprintable() and " " not in value


NOT_IN_A_HEADER = "an HTTP header cannot carry (spaces, control characters or non-ASCII)"
IN_ENV_FILE = (
    " (an EnvironmentFile keeps everything after the `=`, an inline `# comment` too: put "
    "comments on lines of their own)"
)


ENV_AT_START = (
    " in the gateway's environment (read when it starts: a variable added to its "
    "EnvironmentFile takes a restart, not a reload)"
)


def kind_of(value: Any, *, json: bool = False) -> str:
    """What a value is, in the words of the file it came from (YAML config or JSON body)."""
    words = _JSON_WORDS if json else _YAML_WORDS
    if type(value) in words:
        return words[type(value)]
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


class Section:
    """One mapping in a config file, read key by key with typed accessors."""

    def __init__(
        self,
        file: str,
        path: str,
        data: Any,
        problems: Problems,
        allowed: frozenset[str] | None = None,
    ) -> None:
        self.file, self.path, self.problems = file, path, problems
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.report(f"must be a mapping, got {kind_of(data)}")
            data = {}
        self.data: dict[Any, Any] = data
        for key in data if allowed is not None else ():
            if allowed is not None and key not in allowed:
                where = self.child(str(key))
                known = ", ".join(sorted(allowed or ()))
                hint = did_you_mean(str(key), allowed or ())
                problems.add(file, where, f"unknown key{hint} (known keys: {known})")

    def child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def report(self, message: str, key: str | None = None) -> None:
        self.problems.add(self.file, self.child(key) if key else self.path, message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def section(self, key: str, allowed: frozenset[str] | None = None) -> Section:
        return Section(self.file, self.child(key), self.data.get(key), self.problems, allowed)

    def _take(self, key: str, default: Any, required: bool) -> Any:
        if key not in self.data:
            if required:
                self.report("is required", key)
            return _MISSING
        value = self.data[key]
        return _MISSING if value is None and not required and default is None else value

    def string(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        value = self._take(key, default, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or not value:
            self.report(f"must be a non-empty string, got {kind_of(value)}", key)
            return default
        return value

    def number(
        self,
        key: str,
        default: Any = None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
        integer: bool = False,
        required: bool = False,
        unit: str = "",
    ) -> Any:
        """`unit` names what the number counts (`seconds`), in the problem a value that is
        no number gets: `2m` is a string to YAML."""
        value = self._take(key, default, required)
        if value is _MISSING:
            return default
        wanted = ("an integer" if integer else "a number") + (f" of {unit}" if unit else "")
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            got = kind_of(value)
            if isinstance(value, str):
                got = f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
            self.report(f"must be {wanted}, got {got}", key)
            return default
        if isinstance(value, float) and not math.isfinite(value):  # .nan passes every test
            self.report(f"must be a finite number, got {value}", key)
            return default
        if positive and value <= 0:
            self.report(f"must be greater than 0, got {value}", key)
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            if maximum is None:
                self.report(f"must be at least {minimum}, got {value}", key)
            elif minimum is None:
                self.report(f"must be at most {maximum}, got {value}", key)
            else:
                self.report(f"must be between {minimum} and {maximum}, got {value}", key)
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._take(key, default, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.report(f"must be true or false, got {kind_of(value)}", key)
            return default
        return value

    def str_list(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._take(key, default, False)
        if value is _MISSING:
            return default
        return self.problems_str_list(value, self.child(key))

    def problems_str_list(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.problems.add(self.file, path, f"must be a list of strings, got {kind_of(value)}")
            return ()
        items: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item:
                items.append(item)
            else:
                self.problems.add(
                    self.file, f"{path}[{i}]", f"must be a string, got {kind_of(item)}"
                )
        return tuple(items)

    def choice(
        self, key: str, default: str, choices: tuple[str, ...], *, fold_case: bool = False
    ) -> str:
        value = self.string(key, default)
        if fold_case and isinstance(value, str):
            value = value.lower()
        if value not in choices:
            self.report(f"must be one of {', '.join(choices)}, got {value!r}", key)
            return default
        return str(value)

    def items(self) -> Iterator[tuple[str, Any]]:
        """The mapping's entries, each named by a non-empty string: YAML reads `null:`
        and `1:` as no name and a number, which become problems here."""
        for key, value in self.data.items():
            if isinstance(key, str) and key:
                yield key, value
            else:
                shown = "null" if key is None else repr(key)
                self.report(f"a name must be a non-empty string, got {shown}")
