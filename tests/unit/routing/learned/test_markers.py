"""Whole-prompt features: each marker found, each name with its own bucket."""

from hxgw.routing.learned import markers
from hxgw.routing.learned.hashing import bucket


def test_code_markers_are_features() -> None:
    names = markers.names("```js\nconst f = () => { return 1; }\n```")
    assert {"m:fence", "m:arrow", "m:brace", "m:semicolon"} <= set(names)


def test_script_of_non_latin_text_is_a_feature() -> None:
    assert "s:cyrillic" in markers.names("Привет, как дела?")


def test_length_lines_and_shares_are_one_feature_each() -> None:
    names = markers.names("x = 1\ny = 22\n")
    assert "l:tiny" in names
    assert "n:2" in names
    assert "d:high" in names
    assert "u:none" in names


def test_ten_lines_or_more_are_many() -> None:
    assert "n:many" in markers.names("a\n" * 12)
    assert "n:3" in markers.names("a\n" * 9)


def test_a_prompt_without_markers_still_has_its_length_features() -> None:
    assert markers.names("hello there") == ["l:tiny", "n:0", "d:none", "o:none", "u:none"]


def test_buckets_are_the_crc32_of_the_names() -> None:
    text = "Solve ∫ x² dx = ?\n\n```py\nprint(1)\n```"
    assert markers.buckets(text) == [bucket(name) for name in markers.names(text)]


def test_every_feature_name_has_a_bucket_of_its_own() -> None:
    names = {f"m:{n}" for n in markers.CHAR_MARKERS.values()}
    names |= {f"m:{n}" for n, _ in markers.TEXT_MARKERS.values()}
    names |= {f"m:{n}" for n in markers.UNICODE_MARKERS.values()}
    names |= {f"s:{n}" for n in markers.SCRIPTS}
    names |= {f"l:{n}" for _, n in markers.LENGTHS} | {"l:huge"}
    names |= {f"n:{n}" for n in markers.LINES}
    names |= {f"{k}:{s}" for k in "dou" for s in markers.SHARES}
    assert len({bucket(name) for name in names}) == len(names)


def test_every_script_is_found_from_its_first_to_its_last_character() -> None:
    for name, (first, last) in markers.SCRIPTS.items():
        for code in (first, (first + last) // 2, last):
            assert f"s:{name}" in markers.names(f"x {chr(code)} y"), (name, hex(code))
