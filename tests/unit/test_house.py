"""The shape of the package, as issue 18 set it: sub-packages that say what lives in
them, modules of at most 300 lines, and no circle of imports, not even one closed by
an import made only for type checking."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.fixtures import REPO

PACKAGE = REPO / "hxgw"
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(path: Path) -> set[str]:
    """The hxgw modules `path` imports, at run time or for type checking alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` uses the module a.b.c when c is one, else a.b.
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph, as the modules along it, or None."""
    done: set[str] = set()
    for start in graph:
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, edges = stack[-1]
            following = next(edges, None)
            if following is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif following in on_path:
                return [*path[path.index(following) :], following]
            elif following not in done:
                stack.append((following, iter(sorted(graph[following]))))
                path.append(following)
                on_path.add(following)
    return None


def test_no_circle_of_imports_not_even_for_type_checking():
    graph = {name: _imported(path) - {name} for name, path in MODULES.items()}
    # A package's __init__ gathers its modules; a module of the package that imports
    # its own package's face would close a circle, and is counted as one.
    assert _circle(graph) is None


def test_the_circle_finder_finds_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_300_lines(name: str):
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize(
    "name", sorted(n for n, p in MODULES.items() if p.name == "__init__.py" and n != "hxgw")
)
def test_each_sub_package_says_what_lives_in_it(name: str):
    docstring = ast.get_docstring(ast.parse(MODULES[name].read_text()))
    assert docstring and len(docstring.split()) >= 8


# What each part of the package may import, as the parts' docstrings say it ("May
# import: ..."). A part is a sub-package (routing.learned and store are leaves that
# import nothing of hxgw) or a module at the top; the root's __version__ is free to all.
LEAVES = frozenset({"errors", "error_shapes", "jsonio", "memo", "units"})
MAY_IMPORT: dict[str, frozenset[str]] = {
    "jsonio": frozenset(),
    "memo": frozenset(),
    "units": frozenset(),
    "error_shapes": frozenset({"jsonio"}),
    "errors": frozenset({"jsonio", "error_shapes"}),
    "store": frozenset(),
    "routing.learned": frozenset(),
    "upstream": frozenset({"memo"}),
    "config": LEAVES | {"routing.learned", "upstream", "store"},
    "routing": LEAVES | {"config", "routing.learned"},
    "observe": LEAVES | {"config", "routing", "upstream"},
    "usage": LEAVES | {"store"},
    "keys": LEAVES | {"config", "observe", "store"},
    "endpoints": LEAVES | {"config", "upstream"},
    "runtime": LEAVES | {"config", "keys", "observe", "routing", "upstream", "usage"},
    "state": LEAVES | {"config", "routing", "routing.learned", "runtime", "upstream"},
    "pipeline": LEAVES | {"config", "endpoints", "keys", "observe", "routing", "state",
                          "upstream", "usage"},
    "server": LEAVES | {"config", "endpoints", "observe", "pipeline", "runtime", "state",
                        "upstream"},
    "lifecycle": LEAVES | {"config", "endpoints", "keys", "observe", "pipeline", "routing",
                           "runtime", "server", "state", "store", "upstream", "usage"},
    "tools": LEAVES | {"config", "endpoints", "keys", "routing", "routing.learned", "store",
                       "upstream", "usage"},
    "__main__": LEAVES | {"config", "lifecycle", "observe", "tools"},
}


def _part(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:2] == ["routing", "learned"]:
        return "routing.learned"
    return parts[0] if parts else "hxgw"


def test_each_part_imports_only_what_its_docstring_allows():
    wrong = sorted(
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name != "hxgw"
        for target in _imported(path)
        if _part(target) not in {_part(name), "hxgw"}
        and _part(target) not in MAY_IMPORT[_part(name)]
    )
    assert wrong == []


def test_the_parts_import_each_other_in_no_circle():
    graph = {part: set(allowed) for part, allowed in MAY_IMPORT.items()}
    assert _circle(graph) is None


# The pipeline's own rooms, as their docstrings say: the answer is read without the
# failover code (which reads answers with it), and an upload or a bill knows neither.
PIPELINE_ROOMS_NEVER = {
    "answer": {"failover"},
    "uploads": {"failover", "answer", "billing"},
    "billing": {"failover", "answer", "uploads"},
}


def _pipeline_room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "pipeline" else None


def test_the_pipeline_s_rooms_import_only_what_their_docstrings_allow():
    wrong = sorted(
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if (room := _pipeline_room(name)) in PIPELINE_ROOMS_NEVER
        for target in _imported(path)
        if _pipeline_room(target) in PIPELINE_ROOMS_NEVER[room]
    )
    assert wrong == []


@pytest.mark.parametrize("part", sorted(p for p in MAY_IMPORT if f"hxgw.{p}" in MODULES
                                        and MODULES[f"hxgw.{p}"].name == "__init__.py"))
def test_each_sub_package_s_docstring_names_every_part_it_may_import(part: str):
    # The list above and the docstrings say the same: a part allowed here and not named
    # there is one a reader of the package would not expect it to use.
    docstring = ast.get_docstring(ast.parse(MODULES[f"hxgw.{part}"].read_text())) or ""
    _, mark, said = docstring.partition("May import:")
    words = set(re.findall(r"[a-z_]+", said))
    assert mark
    unnamed = {p for p in MAY_IMPORT[part] - LEAVES if p.split(".")[-1] not in words}
    assert unnamed == set()
