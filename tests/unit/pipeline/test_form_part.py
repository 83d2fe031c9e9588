"""A form part's name as the gateway reads it, against python-multipart's reading (the
parser of Starlette, which LiteLLM serves with): a head the upstream would read as the
`model` field is read here as `model` too, or refused; never as another field."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from python_multipart.multipart import parse_options_header

from hxgw.errors import BadRequest
from hxgw.pipeline.uploads.form_part import part_name

PIECES = ["form-data", ";", " ", "\t", "name", "=", '"', "model", "'", "\\", ",", "x", "filename",
          "*", "NAME", ';name="model"', '"model"', "file", '=""', "a"]
"""What heads that hide a name are made of: the fuzz that found three of them."""


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12))
def test_no_head_the_upstream_reads_as_model_is_read_here_as_another_field(pieces: list[str]):
    value = "".join(pieces)
    try:
        ours, _ = part_name(b"Content-Disposition: " + value.encode())
    except BadRequest:
        return  # refused: it reaches no upstream
    _, theirs = parse_options_header(value.encode("latin-1"))
    if theirs.get(b"name") == b"model":
        assert ours == "model", value


@pytest.mark.parametrize(("disposition", "filename"), [
    (b'form-data; name="file"; filename="notes\\"', "notes\\"),  # browsers, curl: unescaped
    (b'form-data; name="file"; filename="my "best" batch.jsonl"', 'my "best" batch.jsonl'),
])
def test_a_file_name_as_real_clients_write_it_off_the_grammar_is_taken(
    disposition: bytes, filename: str
):
    assert part_name(b"Content-Disposition: " + disposition) == ("file", filename)
    assert parse_options_header(disposition)[1][b"name"] == b"file"  # as the upstream reads it


def test_a_file_name_off_the_grammar_that_names_another_field_is_refused():
    with pytest.raises(BadRequest, match="cannot be read"):
        part_name(b'Content-Disposition: form-data; name="file"; filename="a";name="model"')
