"""Per-model body rewrites."""

from __future__ import annotations

import yaml

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


def test_a_set_that_yaml_aliases_make_into_millions_of_values_is_refused():
    # Nine lines: 9 ** 9 values once encoded, gigabytes in every request's body.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 9)]
    doc = yaml.safe_load("\n".join(lines))
    problems = Problems()
    assert parse_transforms([{"set": {"metadata": doc["a8"]}}], "f", "p", problems) == ()
    assert problems.messages == [
        "f: p[0].set: holds more than 10000 values (YAML aliases can make a few lines into "
        "millions): each request's body would carry them"]


def test_parse_rejects_a_set_whose_field_name_is_not_a_string():
    # YAML reads `1: x` as a number: no JSON body can carry it, so every request to the
    # model would fail to encode.
    problems = Problems()
    assert parse_transforms([{"set": {1: "x"}}], "f", "p", problems) == ()
    assert problems.messages == ["f: p[0].set: keys must be strings"]


def test_parse_rejects_a_drop_of_no_fields():
    problems = Problems()
    assert parse_transforms([{"drop": []}], "f", "p", problems) == ()
    assert problems.messages == ["f: p[0].drop: must be a non-empty list of field names"]
