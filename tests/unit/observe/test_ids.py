"""Request ids: 32 hex characters, never the same twice, across batches of randomness."""

from __future__ import annotations

import re

from hxgw.observe.ids import RequestIds


def test_a_request_id_is_128_bits_of_hex():
    assert re.fullmatch(r"[0-9a-f]{32}", RequestIds().new())


def test_request_ids_do_not_repeat_across_many_batches():
    ids = RequestIds()
    made = [ids.new() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(len(request_id) == 32 for request_id in made)


def test_two_generators_do_not_make_the_same_ids():
    assert RequestIds().new() != RequestIds().new()
