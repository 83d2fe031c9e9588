"""Per-model body rewrites."""

from __future__ import annotations

from hxgw.config.reader import Problems
from hxgw.config.transforms import Drop, Rename, SetFields, apply_transforms, parse_transforms


def test_rename_moves_a_field_and_leaves_the_original_body_alone():
    body = {"model": "m", "input": "HX-OK"}
    out = apply_transforms(body, (Rename(pairs=(("input", "prompt"),)),))
    assert out == {"model": "m", "prompt": "HX-OK"}
    assert body == {"model": "m", "input": "HX-OK"}


def test_rename_of_an_absent_field_does_nothing():
    assert apply_transforms({"a": 1}, (Rename(pairs=(("input", "prompt"),)),)) == {"a": 1}


def test_set_and_drop_apply_in_order():
    rewrites = (SetFields(pairs=(("temperature", 0), ("user", "x"))), Drop(keys=("user",)))
    assert apply_transforms({"temperature": 1}, rewrites) == {"temperature": 0}


def test_parse_reads_the_three_rewrites():
    problems = Problems()
    parsed = parse_transforms([{"rename": {"input": "prompt"}}, {"set": {"n": 1}},
                               {"drop": ["user"]}], "f", "p", problems)
    assert problems.messages == []
    assert parsed == (Rename(pairs=(("input", "prompt"),)), SetFields(pairs=(("n", 1),)),
                      Drop(keys=("user",)))


def test_parse_rejects_a_rewrite_with_two_operations():
    problems = Problems()
    assert parse_transforms([{"set": {"a": 1}, "drop": ["b"]}], "f", "p", problems) == ()
    assert problems.messages == ["f: p[0]: must be a mapping with one of: rename, set, drop"]
