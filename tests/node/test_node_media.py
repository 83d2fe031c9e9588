"""Audio and images through the gateway with the node openai SDK: uploads made by its
`toFile` (the node SDK puts the file part before `model`, so the gateway spools it
until it has read the group), speech's binary body, image generation, edits and
variations. The groups and models are those of tests/e2e/test_audio_and_images.py."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import StartGateway
from tests.e2e.test_audio_and_images import MEDIA_MODELS, ROUTING, SOUND
from tests.fake_media import AUDIO, PNG, TEXT
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway
from tests.node.test_node_sdks import run

pytestmark = pytest.mark.node


@pytest.fixture
async def media(start_gateway: StartGateway) -> Gateway:
    return await start_gateway(models=MEDIA_MODELS, routing=ROUTING)


async def test_openai_transcription_goes_upstream_with_the_chosen_models_id_after_the_file(
    media: Gateway, fake: FakeUpstream
):
    result = await run("openai/transcription.mjs", media)
    assert result["result"]["text"] == TEXT
    seen = fake.requests[-1]
    assert (seen.path, seen.model) == ("/v1/audio/transcriptions", "gpt-4o-transcribe")
    assert seen.body["file"] == [{"filename": "hello.wav", "content_type": "audio/wav",
                                  "size": len(SOUND)}]
    # The form's parts in the order they came: the file first, the path this covers.
    assert list(seen.body) == ["file", "model"]


async def test_openai_transcription_of_a_file_larger_than_the_spools_memory(
    media: Gateway, fake: FakeUpstream
):
    result = await run("openai/transcription.mjs", media, HXGW_REPEAT="128")
    assert result["result"]["text"] == TEXT
    assert fake.requests[-1].body["file"][0]["size"] == len(SOUND) * 128  # 2 MiB


async def test_openai_transcription_as_text_arrives_as_a_string(
    media: Gateway, fake: FakeUpstream
):
    result = await run("openai/transcription.mjs", media, HXGW_FORMAT="text")
    assert result == {"type": "string", "result": TEXT + "\n"}
    assert fake.requests[-1].body["response_format"] == "text"


async def test_openai_transcription_as_json_arrives_with_its_usage(
    media: Gateway, fake: FakeUpstream
):
    result = (await run("openai/transcription.mjs", media, HXGW_FORMAT="json"))["result"]
    assert result["text"] == TEXT and result["usage"]["input_tokens"] == 14
    assert fake.requests[-1].body["response_format"] == "json"


async def test_openai_translation_is_answered_by_the_groups_model(
    media: Gateway, fake: FakeUpstream
):
    assert (await run("openai/translation.mjs", media))["text"] == TEXT
    assert (fake.requests[-1].path, fake.requests[-1].model) == (
        "/v1/audio/translations", "gpt-4o-transcribe")


async def test_openai_speech_body_is_the_upstreams_audio_byte_for_byte(
    media: Gateway, fake: FakeUpstream
):
    result = await run("openai/speech.mjs", media)
    assert result["contentType"] == "audio/mpeg"
    assert base64.b64decode(result["body"]) == b"".join(AUDIO)
    assert fake.requests[-1].model == "tts-1"


async def test_openai_images_generate_answers_b64_json_with_usage(
    media: Gateway, fake: FakeUpstream
):
    result = await run("openai/image-generate.mjs", media)
    assert result["b64"] == [PNG, PNG] and result["usage"]["total_tokens"] == 100
    assert (fake.requests[-1].path, fake.requests[-1].model) == (
        "/v1/images/generations", "gpt-image-1")


async def test_openai_image_edit_goes_upstream_as_a_form_with_its_images(
    media: Gateway, fake: FakeUpstream
):
    result = await run("openai/image-edit.mjs", media)
    assert result["b64"] == [PNG]
    seen = fake.requests[-1]
    assert (seen.path, seen.model, seen.body["prompt"]) == (
        "/v1/images/edits", "gpt-image-1", "add a hat")
    assert list(seen.body) == ["image[]", "prompt", "model"]
    assert [(f["filename"], f["size"]) for f in seen.body["image[]"]] == [
        ("a.png", 400), ("b.png", 4)]


async def test_openai_image_variation_by_a_named_model_answers_urls(
    media: Gateway, fake: FakeUpstream
):
    result = await run("openai/image-variation.mjs", media)
    assert result["urls"] == ["https://fake.example/img-0.png"]
    assert (fake.requests[-1].path, fake.requests[-1].model) == (
        "/v1/images/variations", "dall-e-2")



async def test_openai_transcription_of_a_streaming_file_goes_upstream_whole_with_its_length(
    media: Gateway, fake: FakeUpstream
):
    # The SDK sends it chunked, file first: by its `model` field the form is all but its
    # end, which the gateway reads before it goes (docs/uploads.md), so its length is known.
    result = await run("openai/transcription-streaming-file.mjs", media, HXGW_REPEAT="128")
    assert result["result"]["text"] == TEXT
    seen = fake.requests[-1]
    assert (seen.model, list(seen.body)) == ("gpt-4o-transcribe", ["file", "model"])
    assert seen.body["file"][0]["size"] == len(SOUND) * 128
    assert "Transfer-Encoding" not in seen.headers and int(seen.headers["Content-Length"]) > 0
