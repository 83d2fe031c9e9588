"""Who a ledger row says a request was for: what its body names, as the client sent it."""

from __future__ import annotations

from typing import Any

import pytest

from hxgw.pipeline.billing.end_user import END_USER_CHARS, end_user


@pytest.mark.parametrize(("body", "said"), [
    ({"user": "u-1", "safety_identifier": "s-1"}, "u-1"),
    ({"user": "", "safety_identifier": "s-1"}, "s-1"),
    ({"metadata": {"user_id": "a-1"}}, "a-1"),
    ({"user": "u-1", "metadata": {"user_id": "a-1"}}, "u-1"),
    ({}, None),
    ({"user": 17}, None),
    ({"user": 17, "safety_identifier": "s-1"}, "s-1"),
    ({"metadata": {"user_id": ["a-1"]}}, None),
    ({"metadata": "a-1"}, None),
])
def test_the_end_user_is_the_first_the_body_names_as_a_string(
    body: dict[str, Any], said: str | None
):
    assert end_user(body) == said


def test_an_end_user_is_cut_to_what_a_row_keeps():
    assert end_user({"user": "u" * 10_000}) == "u" * END_USER_CHARS


def test_a_nul_in_an_end_user_is_written_as_a_replacement_character():
    # PostgreSQL refuses a text with a NUL in it: the request's row would have been lost.
    assert end_user({"user": "a\x00b"}) == "a\ufffdb"
