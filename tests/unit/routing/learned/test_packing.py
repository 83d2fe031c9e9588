"""Packed fixed-point sums equal plain float sums."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hxgw.routing.learned import packing

vectors = st.lists(st.floats(min_value=-1000, max_value=1000), min_size=7, max_size=7)


@given(st.lists(vectors, min_size=1, max_size=50))
def test_sum_of_packed_vectors_unpacks_to_the_float_sum(rows: list[list[float]]) -> None:
    total = sum(packing.pack(row) for row in rows)
    got = packing.unpack(total, len(rows), 7)
    for k, value in enumerate(got):
        assert value == pytest.approx(sum(row[k] for row in rows), abs=1e-6 * len(rows))


def test_pack_refuses_values_that_would_overflow_a_field() -> None:
    with pytest.raises(ValueError, match="out of range"):
        packing.pack([float(packing.MAX_VALUE)])
