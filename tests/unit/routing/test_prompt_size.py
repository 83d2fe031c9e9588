"""What a request's prompt holds: its text, and the media it sends inline, which
providers count by pixels, seconds or pages, not by characters."""

import base64

from hxgw.routing.prompt_size import MAX_TOKENS, MAX_WALKED, asked, largest_answer, measure

PHOTO = base64.b64encode(bytes(range(256)) * 2000).decode()  # 512,000 bytes of "image"


def test_an_image_in_a_data_url_is_media_and_the_question_beside_it_text():
    url = "data:image/jpeg;base64," + PHOTO
    content = [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": url}}]
    size = measure([{"role": "user", "content": content}])
    assert size.media == len(url)
    assert size.text == len("what?") + len("text") + len("image_url") + len("user")


def test_anthropic_s_base64_source_and_openai_s_input_audio_are_media():
    source = {"type": "base64", "media_type": "image/png", "data": PHOTO}
    audio = {"type": "input_audio", "input_audio": {"data": PHOTO, "format": "wav"}}
    assert measure([source, audio]).media == 2 * len(PHOTO)


def test_prose_is_text():
    prose = "the quick brown fox jumps over the lazy dog " * 20_000
    assert measure({"content": prose}) == (len(prose), 0)


def test_a_token_id_counts_as_four_characters():
    assert measure([15339, 1917]).text == 8


def test_past_the_items_read_one_by_one_a_list_counts_a_token_an_item_unread():
    # Millions of token ids: counted, not read one by one.
    ids = [1] * (4 * MAX_WALKED)
    assert measure(ids).text == 4 * len(ids)
    assert measure([["x" * 10] * MAX_WALKED, ["y"] * 10]).text == 10 + 4 * MAX_WALKED


def test_past_the_items_read_one_by_one_objects_count_toward_them_too():
    nested: object = "x" * 1_000_000
    for _ in range(MAX_WALKED + 1):
        nested = {"k": nested}
    assert measure(nested).text < 1_000_000  # the text at the bottom is never reached


def test_a_boolean_counts_as_no_text():
    assert measure([True, False]).text == 0


def test_the_largest_answer_any_field_allows_is_what_a_key_s_limits_reserve():
    assert largest_answer({"max_tokens": 10, "max_completion_tokens": 500}) == 500


def test_a_fractional_count_is_rounded_up():
    assert asked(0.5) == 1


def test_a_count_past_any_model_s_is_taken_as_max_tokens():
    assert (asked(2**64 - 1), asked("inf")) == (MAX_TOKENS, MAX_TOKENS)


def test_a_boolean_is_no_count():
    assert asked(True) == 0
