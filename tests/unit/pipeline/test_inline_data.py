"""Media in base64 inside a request body, which providers count by pixels, seconds or
pages, not by its bytes."""

import base64

from hxgw.pipeline.inline_data import inline_characters

PHOTO = base64.b64encode(bytes(range(256)) * 2000).decode()  # 512,000 bytes of "image"


def test_an_image_in_a_data_url_is_inline_data():
    part = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + PHOTO}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, part]}]}
    assert inline_characters(body) == len("data:image/jpeg;base64,") + len(PHOTO)


def test_anthropic_s_bare_base64_source_is_inline_data():
    source = {"type": "base64", "media_type": "image/png", "data": PHOTO}
    body = {"messages": [{"role": "user", "content": [{"type": "image", "source": source}]}]}
    assert inline_characters(body) == len(PHOTO)


def test_long_prose_is_not_inline_data():
    prose = "the quick brown fox jumps over the lazy dog " * 20_000
    assert inline_characters({"messages": [{"role": "user", "content": prose}]}) == 0


def test_a_short_base64_string_is_not_inline_data():
    assert inline_characters({"input": PHOTO[:1000]}) == 0
