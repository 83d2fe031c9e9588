"""The limiters' names for a key's end users, and which rate-limit headers an answer
held to both a key's and its end user's limits carries."""

from __future__ import annotations

from hxgw.keys.per_user import named, tighter, user_name


def _said(kind: str, limit: int, left: int) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(left),
        f"x-ratelimit-reset-{kind}": "1s",
    }


def test_an_end_user_s_name_gives_back_its_key_and_end_user_whatever_the_end_user_says():
    for end_user in ("alice", "a user b", " user ", "x (unbilled)"):
        assert named(user_name("app", end_user)) == ("app", end_user)


def test_a_key_s_own_name_stands_for_no_end_user():
    assert named("app") == ("app", None)
    assert named("app (unbilled)") == ("app (unbilled)", None)


def test_the_end_user_s_headers_are_taken_where_it_has_less_left():
    key = _said("requests", 100, 40) | _said("tokens", 10_000, 50)
    user = _said("requests", 5, 2) | _said("tokens", 1000, 900)
    merged = tighter(key, user)
    assert merged == _said("requests", 5, 2) | _said("tokens", 10_000, 50)


def test_a_kind_only_the_end_user_is_limited_in_comes_from_the_end_user():
    assert tighter(_said("requests", 100, 40), _said("tokens", 1000, 900)) == (
        _said("requests", 100, 40) | _said("tokens", 1000, 900)
    )


def test_a_key_with_none_left_keeps_its_own_headers():
    key, user = _said("requests", 10, 0), _said("requests", 5, 3)
    assert tighter(key, user) == key


def test_where_both_have_as_many_left_the_key_s_own_headers_are_kept():
    key, user = _said("requests", 10, 3), _said("requests", 5, 3)
    assert tighter(key, user) == key
