"""Readiness across reloads: what was seen of an upstream is of its name at its URL."""

from __future__ import annotations

from pathlib import Path

from hxgw.config import Config, load_config
from hxgw.observe.readiness import Readiness
from tests.fixtures import write_config


def _config(directory: Path, url: str) -> Config:
    write_config(directory, url)
    return load_config(directory, {"MASTER_KEY": "k"})


def test_an_upstream_moved_to_another_url_is_not_ready_on_the_old_ones_answer(tmp_path: Path):
    readiness = Readiness()
    readiness.follow(_config(tmp_path / "a", "http://127.0.0.1:1"))
    readiness.saw_ok("default")
    moved = _config(tmp_path / "b", "http://127.0.0.1:2")
    assert readiness.follow(moved) == []  # moved, not removed
    assert not readiness.report(moved, False, 0.0)[0]


def test_an_upstream_at_the_same_url_keeps_what_was_seen(tmp_path: Path):
    readiness = Readiness()
    readiness.follow(_config(tmp_path / "a", "http://127.0.0.1:1"))
    readiness.saw_ok("default")
    again = _config(tmp_path / "b", "http://127.0.0.1:1")
    readiness.follow(again)
    assert readiness.report(again, False, 0.0)[0]


def test_an_upstream_a_reload_removed_is_named_once(tmp_path: Path):
    readiness = Readiness()
    both = {"default": {"url": "http://127.0.0.1:1"}, "spare": {"url": "http://127.0.0.1:2"}}
    write_config(tmp_path / "a", "", gateway={"upstreams": both})
    readiness.follow(load_config(tmp_path / "a", {"MASTER_KEY": "k"}))
    one = _config(tmp_path / "b", "http://127.0.0.1:1")
    assert readiness.follow(one) == ["spare"]
    assert readiness.follow(one) == []
