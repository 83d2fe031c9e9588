"""The form scanner alone: it finds the `model` field wherever the reads cut the body, and
hands back every other byte exactly as it came."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hxgw.errors import BadRequest
from hxgw.pipeline.uploads.form_part import part_name
from hxgw.pipeline.uploads.multipart import (
    MAX_MODEL,
    MAX_PART_HEAD,
    ModelField,
    form_boundary,
    form_content_type,
)

B = b"xYz0"


def part(name: str, value: bytes, filename: str | None = None, boundary: bytes = B) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return b"--" + boundary + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value \
        + b"\r\n"


def close(boundary: bytes = B) -> bytes:
    return b"--" + boundary + b"--\r\n"


def scan(body: bytes, cuts: list[int], boundary: bytes = B) -> tuple[ModelField, bytes]:
    """Feed `body` cut at `cuts`; what was handed back, and the scanner."""
    scanner = ModelField(boundary)
    passed = b""
    at = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        passed += scanner.feed(body[at:cut])
        at = cut
        if scanner.value is not None:
            return scanner, passed
    return scanner, passed + scanner.finish()


# A file whose bytes look like the start of a boundary, and a CR at a read's end.
FILE = b"RIFF\r\n--xYz\r\n-\r\r\n--xY" * 50 + b"\r"
FILE_FIRST = part("file", FILE, "a.wav") + part("model", b"stt") + part("n", b"1") + close()


@given(st.lists(st.integers(min_value=0, max_value=len(FILE_FIRST)), max_size=40))
def test_the_model_is_found_wherever_the_reads_cut_the_form(cuts: list[int]):
    scanner, passed = scan(FILE_FIRST, cuts)
    assert scanner.value == b"stt"
    assert passed + scanner.value + scanner.rest == FILE_FIRST[: len(passed) + 3 + len(
        scanner.rest)]
    assert passed.endswith(b'name="model"\r\n\r\n') and scanner.rest.startswith(b"\r\n--" + B)


def test_byte_by_byte_the_file_before_the_model_is_handed_back_whole():
    scanner, passed = scan(FILE_FIRST, list(range(len(FILE_FIRST))))
    assert passed == FILE_FIRST[: FILE_FIRST.index(b"stt\r\n--")]
    assert scanner.value == b"stt"


def test_a_form_without_a_model_is_handed_back_whole_at_its_end():
    body = part("file", FILE, "a.wav") + close() + b"epilogue"
    scanner, passed = scan(body, [10, 500])
    assert (scanner.value, passed) == (None, body)


def test_a_file_part_named_model_before_the_model_field_is_a_400():
    # An upstream's form (Starlette's) reads a file named `model` as the model too.
    body = part("model", b"not me", "model.txt") + part("model", b"me") + close()
    with pytest.raises(BadRequest, match="'model' field is a file"):
        scan(body, [])


def test_a_file_part_named_model_after_the_model_field_is_a_400():
    rest = b"\r\n" + part("file", FILE, "a.wav") + part("model", b"OTHER", "m") + close()
    with pytest.raises(BadRequest, match="'model' field is a file"):
        ModelField.after_model(B).feed(rest)


def test_a_quoted_boundary_parameter_is_unquoted():
    assert form_boundary('multipart/form-data; boundary="a=b:c"') == b"a=b:c"
    assert form_boundary("Multipart/Form-Data;boundary=plain") == b"plain"


@pytest.mark.parametrize("content_type", [None, "application/json", "multipart/mixed; boundary=a",
                                          "multipart/form-data", "multipart/form-data; boundary="
                                          + "x" * 71])
def test_anything_but_a_form_with_a_boundary_is_a_400(content_type: str | None):
    with pytest.raises(BadRequest):
        form_boundary(content_type)


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary=AAAA; boundary=BBBB",  # aiohttp reads the first
    'multipart/form-data; boundary="Q\\"Q"',  # python-multipart unescapes the quote
])
def test_a_boundary_parsers_may_read_apart_is_a_400(content_type: str):
    # The upstream would find another form, with another model, in the same bytes.
    with pytest.raises(BadRequest, match="one boundary parameter"):
        form_boundary(content_type)


@pytest.mark.parametrize(("boundary", "content_type"), [
    (b"----WebKitFormBoundary7MA4YWxk", "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxk"),
    (b"a=b:c", 'multipart/form-data; boundary="a=b:c"'),
])
def test_an_upload_goes_upstream_naming_only_the_boundary_the_gateway_read(
    boundary: bytes, content_type: str
):
    assert form_content_type(boundary) == content_type
    assert form_boundary(content_type) == boundary


def test_a_preamble_and_padding_after_a_boundary_are_allowed():
    padded = part("model", b"stt").replace(B + b"\r\n", B + b"  \t\r\n", 1)
    scanner, _ = scan(b"ignore me\r\n" + padded + close(), [3, 12])
    assert scanner.value == b"stt" and scanner.first_at == len(b"ignore me\r\n")


def test_crlf_inside_the_model_value_stays_part_of_it():
    assert scan(part("model", b"a\r\nb") + close(), [])[0].value == b"a\r\nb"


def test_a_part_without_header_fields_is_passed_over():
    body = b"--" + B + b"\r\n\r\nanonymous\r\n" + part("model", b"stt") + close()
    assert scan(body, [5, 17])[0].value == b"stt"


def test_a_form_that_does_not_close_is_a_400():
    with pytest.raises(BadRequest, match="ended before its closing boundary"):
        scan(part("file", FILE, "a.wav"), [7])


def test_an_empty_body_is_a_400():
    with pytest.raises(BadRequest, match="empty"):
        scan(b"", [])


def test_a_body_that_never_shows_its_boundary_is_a_400():
    with pytest.raises(BadRequest, match="does not start with its form's boundary"):
        scan(b"{" + b"x" * MAX_PART_HEAD + b"}", [100])


def test_a_part_head_without_its_blank_line_is_a_400():
    with pytest.raises(BadRequest, match="part head of the form is over"):
        scan(b"--" + B + b"\r\nX-Filler: " + b"x" * MAX_PART_HEAD, [])


def test_a_boundary_with_more_on_its_line_is_a_400():
    with pytest.raises(BadRequest, match="more after the boundary"):
        scan(b"--" + B + b"junk\r\n" + close(), [])


def test_a_model_value_over_the_limit_is_a_400():
    with pytest.raises(BadRequest, match="'model' field is over") as raised:
        scan(part("model", b"m" * (MAX_MODEL + 1)) + close(), [])
    assert raised.value.param == "model"


@pytest.mark.parametrize("disposition", [
    b'form-data; name="model"; ;', b'form-data; name="x"; name="model"',
    b'form-data; name="model" ; foo', b"form-data; name*=UTF-8''model",
    # Each read by aiohttp as another field, by Starlette's parser as a second model.
    b'form-data; name="x"\';name="model"',
    b'form-data; xfilenamename="model"filename ;name="model"',
    b'form-data; \t xname="x",=""model;name="model"',
    b'form-data; name="x"; NAME="model"', b'form-data; name="mo\\del"',
    b'form-data; name="x"\nContent-Disposition: form-data; name="model"'])
def test_a_content_disposition_that_may_hide_a_name_is_a_400(disposition: bytes):
    # Parsers read these each their own way: one may find "model" where the gateway did not.
    body = (b"--" + B + b"\r\nContent-Disposition: " + disposition + b"\r\n\r\nx\r\n"
            + part("model", b"stt") + close())
    with pytest.raises(BadRequest, match=r"Content-Disposition that cannot be read|name\*|CRLF"):
        scan(body, [])


@pytest.mark.parametrize(("disposition", "name", "filename"), [
    (b'form-data; name="model"', "model", None),
    (b"form-data; name=model;", "model", None),
    (b'form-data ; Name = "file" ; filename="a.wav"', "file", "a.wav"),
    (b'form-data; name="file"; filename="\xc3\xa9t\xc3\xa9.wav"', "file", "\u00e9t\u00e9.wav"),
    (b'form-data; name="f"; filename="say \\"hi\\".txt"', "f", 'say "hi".txt'),
])
def test_a_content_disposition_as_clients_send_it_is_read(
    disposition: bytes, name: str, filename: str | None
):
    assert part_name(b"Content-Disposition: " + disposition) == (name, filename)


@given(st.lists(st.integers(min_value=0, max_value=len(FILE_FIRST)), max_size=20))
def test_what_follows_the_model_passes_the_watch_wherever_the_reads_cut_it(cuts: list[int]):
    rest = FILE_FIRST[FILE_FIRST.index(b"stt\r\n--") + 3 :] + part("file", FILE, "b.wav")
    rest += close()
    watch = ModelField.after_model(B)
    at, out = 0, b""
    for cut in [*sorted(set(c % len(rest) for c in cuts)), len(rest)]:
        out += watch.feed(rest[at:cut])
        at = cut
    assert out + watch.finish() == rest


@pytest.mark.parametrize("cut", [0, 7, 40])
def test_a_second_model_field_after_the_first_is_a_400(cut: int):
    rest = b"\r\n" + part("file", FILE, "a.wav") + part("model", b"o1-pro") + close()
    watch = ModelField.after_model(B)
    with pytest.raises(BadRequest, match="more than one 'model' field"):
        watch.feed(rest[:cut])
        watch.feed(rest[cut:])


def test_a_part_head_with_two_content_dispositions_is_a_400():
    twice = (b"--" + B + b'\r\nContent-Disposition: form-data; name="x"\r\n'
             b'Content-Disposition: form-data; name="model"\r\n\r\nstt\r\n' + close())
    with pytest.raises(BadRequest, match="more than one Content-Disposition"):
        scan(twice, [])


@pytest.mark.parametrize("field", ["api_base", "fallbacks", "api_key"])
def test_a_field_that_steers_litellm_is_a_400_before_the_model(field: str):
    body = part(field, b"http://elsewhere") + part("model", b"stt") + close()
    with pytest.raises(BadRequest, match=f"'{field}' steers LiteLLM") as refused:
        scan(body, [])
    assert refused.value.param == field


def test_a_field_that_steers_litellm_after_the_model_is_a_400_from_the_watch():
    rest = b"\r\n" + part("file", FILE, "a.wav") + part("api_base", b"http://x") + close()
    with pytest.raises(BadRequest, match="'api_base' steers LiteLLM"):
        ModelField.after_model(B).feed(rest)


def test_a_file_form_s_watch_passes_any_field_but_those_that_steer_litellm():
    watch = ModelField.watching(B)
    as_sent = part("purpose", b"batch") + part("model", b"any") + part("file", FILE, "a.jsonl")
    assert watch.feed(as_sent) + watch.feed(close()) == as_sent + close()
    with pytest.raises(BadRequest, match="'api_base' steers LiteLLM"):
        ModelField.watching(B).feed(as_sent + part("api_base", b"http://x") + close())
