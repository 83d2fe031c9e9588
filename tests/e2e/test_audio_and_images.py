"""Audio and images through the gateway with the official openai SDK: transcriptions and
translations (multipart uploads streamed upstream, their `model` field rewritten),
speech relayed chunk by chunk, image generation, edits and variations."""

from __future__ import annotations

import asyncio
import gzip
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from multidict import CIMultiDict

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_media import AUDIO, TEXT
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, ledger_rows, new_key, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
MEDIA_MODELS: list[dict[str, Any]] = [
    *DEFAULT_MODELS,
    {"name": "transcribe", "tier_score": 0.9, "specializations": [],
     "upstream_model": "gpt-4o-transcribe", "mode": "audio_transcription"},
    {"name": "whisper", "tier_score": 0.7, "specializations": [],
     "upstream_model": "whisper-1", "mode": "audio_transcription"},
    {"name": "tts", "tier_score": 0.8, "specializations": [],
     "upstream_model": "tts-1", "mode": "audio_speech"},
    {"name": "painter", "tier_score": 0.9, "specializations": [],
     "upstream_model": "gpt-image-1", "mode": "image_generation"},
    {"name": "dalle", "tier_score": 0.6, "specializations": [],
     "upstream_model": "dall-e-2", "mode": "image_generation"},
]
GROUPS = {"chat": ["alpha", "beta"], "stt": ["transcribe", "whisper"], "voice": ["tts"],
          "images": ["painter", "dalle"]}
ROUTING = {"routing": {"strategy": "failover", "default_group": "chat", "groups": GROUPS}}
SOUND = b"RIFF" + bytes(range(256)) * 64  # 16 KiB of "audio"
MiB = 1024 * 1024


async def _start(start_gateway: StartGateway, **config: Any) -> Gateway:
    return await start_gateway(models=MEDIA_MODELS, routing=ROUTING, **config)


@pytest.fixture(scope="module")
async def module_gateway(
    tmp_path_factory: pytest.TempPathFactory, module_upstream: tuple[FakeUpstream, str]
) -> AsyncIterator[Gateway]:
    """The gateway this module's tests share (tests/one_gateway.py), on the media config."""
    async with one_gateway.serving_shared(tmp_path_factory.mktemp("one-gateway"),
                                          module_upstream[1], models=MEDIA_MODELS,
                                          groups=GROUPS) as shared:
        yield shared


@pytest.fixture
def media(gateway: Gateway) -> Gateway:
    """The module's shared gateway, on the media config."""
    return gateway


@pytest.fixture
async def own_media(start_gateway: StartGateway) -> Gateway:
    """A gateway on the media config for this test alone: for a test that leaves
    state behind in it."""
    return await _start(start_gateway)


def _sdk(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)


@pytest.fixture
async def sdk(media: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with _sdk(media) as client:
        yield client


@pytest.fixture
async def own_sdk(own_media: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with _sdk(own_media) as client:
        yield client


def form(boundary: str, *parts: tuple[str, bytes, str | None]) -> bytes:
    """A multipart/form-data body of (name, value, filename) parts, in the given order."""
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename
                                                      else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if filename:
            head += "Content-Type: audio/mpeg\r\n"
        out += head.encode() + b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _form_headers(gateway: Gateway, boundary: str, **extra: str) -> dict[str, str]:
    return {**gateway.auth, "Content-Type": f"multipart/form-data; boundary={boundary}", **extra}


async def test_a_transcription_is_answered_with_the_form_model_rewritten(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    result = await sdk.audio.transcriptions.create(
        model="stt", file=("hello.wav", SOUND, "audio/wav"))
    assert result.text == TEXT
    seen = fake.requests[-1]
    assert (seen.path, seen.model) == ("/v1/audio/transcriptions", "gpt-4o-transcribe")
    assert seen.body["file"] == [{"filename": "hello.wav", "content_type": "audio/wav",
                                  "size": len(SOUND)}]


async def test_a_streamed_transcription_arrives_as_events_and_is_billed_as_a_stream(
    own_sdk: openai.AsyncOpenAI, own_media: Gateway
):
    sdk, media = own_sdk, own_media  # its ledger's newest transcription row must be its own
    stream = await sdk.audio.transcriptions.create(
        model="stt", file=("a.wav", SOUND), stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events] == ["transcript.text.delta"] * len(TEXT.split()) + [
        "transcript.text.done"]
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == TEXT
    # The form's `stream` field is not read (only the fields up to `model` are): the
    # ledger learns it was a stream from the answer.
    row = await _ledger_row(media, "audio_transcriptions")
    assert (row["stream"], row["prompt_tokens"], row["completion_tokens"]) == (
        1, 14, len(TEXT.split()))
    assert row["usage_source"] == "reported"


async def test_a_transcription_stream_that_ends_before_its_done_event_ends_with_an_error(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    fake.behave("gpt-4o-transcribe", end_after_chunks=2)
    stream = await sdk.audio.transcriptions.create(
        model="stt", file=("a.wav", SOUND), stream=True)
    with pytest.raises(openai.APIError, match="before its final event"):
        async for _ in stream:
            pass


async def _ledger_row(gateway: Gateway, route: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [r for r in ledger_rows(gateway) if r["route"] == route]
        if rows:
            return rows[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no ledger row for {route}")


@pytest.mark.parametrize("response_format", ["text", "srt", "vtt"])
async def test_a_transcription_in_a_text_format_arrives_as_text(
    sdk: openai.AsyncOpenAI, response_format: Any
):
    result = await sdk.audio.transcriptions.create(
        model="stt", file=("a.wav", SOUND), response_format=response_format)
    assert isinstance(result, str) and TEXT in result


async def test_a_verbose_transcription_arrives_with_its_segments(sdk: openai.AsyncOpenAI):
    result = await sdk.audio.transcriptions.create(
        model="stt", file=("a.wav", SOUND), response_format="verbose_json")
    assert result.duration == 2.5 and result.segments and result.segments[0].end == 2.5


# The SDK calls translations and variations deprecated; the API still serves them.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_a_translation_is_answered_with_the_groups_model(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    result = await sdk.audio.translations.create(model="stt", file=("a.wav", SOUND))
    assert result.text == TEXT
    assert (fake.requests[-1].path, fake.requests[-1].model) == (
        "/v1/audio/translations", "gpt-4o-transcribe")


async def test_speech_reaches_the_client_chunk_by_chunk(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    # The upstream holds its second chunk until the client has the first: a gateway that
    # collected the answer would never deliver it.
    gate = asyncio.Event()
    fake.behave("tts-1", gate=gate)
    async with sdk.audio.speech.with_streaming_response.create(
        model="voice", voice="alloy", input="hello") as response:
        assert response.headers["content-type"] == "audio/mpeg"
        chunks = response.iter_bytes()
        first = await anext(chunks)
        assert fake.progress["/v1/audio/speech"] == 1
        gate.set()
        rest = b"".join([chunk async for chunk in chunks])
    assert first + rest == b"".join(AUDIO)
    assert fake.requests[-1].model == "tts-1"


async def test_an_image_is_generated_as_b64_json(sdk: openai.AsyncOpenAI, fake: FakeUpstream):
    result = await sdk.images.generate(model="images", prompt="a cat", n=2)
    assert result.data is not None and len(result.data) == 2 and result.data[0].b64_json
    assert result.usage is not None and result.usage.total_tokens == 100
    assert fake.requests[-1].model == "gpt-image-1"


async def test_an_image_edit_goes_upstream_as_a_form_with_its_images(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    result = await sdk.images.edit(model="images", prompt="add a hat",
                                   image=[("a.png", b"\x89PNG" * 100), ("b.png", b"\x89PNG")])
    assert result.data and result.data[0].b64_json
    seen = fake.requests[-1]
    assert (seen.path, seen.model, seen.body["prompt"]) == (
        "/v1/images/edits", "gpt-image-1", "add a hat")
    assert [f["size"] for f in next(v for k, v in seen.body.items() if "image" in k)] == [400, 4]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_an_image_variation_is_answered_with_urls_from_a_pinned_model(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    result = await sdk.images.create_variation(model="dalle", image=("a.png", b"\x89PNG"), n=1)
    assert result.data and result.data[0].url == "https://fake.example/img-0.png"
    assert (fake.requests[-1].path, fake.requests[-1].model) == (
        "/v1/images/variations", "dall-e-2")


async def test_the_group_may_come_by_header_when_the_form_has_no_model(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    body = form("b0und", ("file", SOUND, "a.wav"))
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=_form_headers(media, "b0und", **{"X-HX-Model-Group": "stt"})
                           ) as resp:
        assert resp.status == 200, await resp.text()
    assert fake.requests[-1].model == "gpt-4o-transcribe"
    assert fake.requests[-1].body["file"][0]["size"] == len(SOUND)


async def test_a_form_with_its_file_before_its_model_is_routed_by_the_model(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # As the node SDK sends it; 2 MiB goes past the spool's memory, to its file.
    sound = SOUND * 128
    body = form("n0de", ("file", sound, "a.wav"), ("model", b"whisper", None),
                ("response_format", b"text", None))
    async with client.post(media.url + "/v1/audio/transcriptions", data=io.BytesIO(body),
                           headers=_form_headers(media, "n0de")) as resp:
        assert resp.status == 200, await resp.text()
        assert await resp.text() == TEXT + "\n"
    seen = fake.requests[-1]
    assert (seen.model, seen.body["file"][0]["size"]) == ("whisper-1", len(sound))


async def test_a_form_goes_upstream_with_only_the_boundary_the_gateway_read_it_by(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    body = form("q=b", ("model", b"whisper", None), ("file", SOUND, "a.wav"))
    headers = {**media.auth,
               "Content-Type": 'multipart/form-data; charset=utf-8; boundary="q=b"; x=1'}
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    assert fake.requests[-1].headers["Content-Type"] == 'multipart/form-data; boundary="q=b"'


async def test_a_form_with_two_boundaries_is_refused_before_the_upstream_sees_it(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # An upstream that takes the last boundary would find another form, and another model.
    body = form("AAAA", ("model", b"whisper", None), ("file", SOUND, "a.wav"))
    headers = {**media.auth,
               "Content-Type": "multipart/form-data; boundary=AAAA; boundary=BBBB"}
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=headers) as resp:
        assert resp.status == 400
        assert "one boundary parameter" in (await resp.json())["error"]["message"]
    assert fake.requests == []


async def test_a_large_upload_reaches_the_upstream_while_the_client_is_still_sending(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    """30 MB, sent a MiB at a time; before each next MiB the client waits until the
    upstream has all but 8 MiB of what it sent. A gateway that held the upload (or more
    than that window of it) would never let the upstream get that far: the test would
    stall, not pass."""
    gateway = await _start(start_gateway, gateway={"limits": {"max_audio_bytes": 64 * MiB}})
    head = form("big", ("model", b"stt", None))[: -len(b"--big--\r\n")]
    head += b'--big\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    tail = b"\r\n--big--\r\n"
    total, piece = 30 * MiB, b"\x01" * MiB

    async def body() -> AsyncIterator[bytes]:
        yield head
        for sent in range(MiB, total + 1, MiB):
            yield piece
            await wait_for(lambda sent=sent: fake.upload_progress.get(
                "/v1/audio/transcriptions", 0) >= sent - 8 * MiB, timeout=20)
        yield tail

    headers = _form_headers(gateway, "big", **{
        "Content-Length": str(len(head) + total + len(tail))})
    async with client.post(gateway.url + "/v1/audio/transcriptions", data=body(),
                           headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    assert fake.requests[-1].body["file"][0]["size"] == total


async def test_an_upload_declared_over_the_audio_limit_is_refused_with_413_naming_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await _start(start_gateway, gateway={"limits": {"max_audio_bytes": 100_000}})
    body = form("b", ("model", b"stt", None), ("file", b"x" * 200_000, "a.wav"))
    async with client.post(gateway.url + "/v1/audio/transcriptions", data=body,
                           headers=_form_headers(gateway, "b")) as resp:
        assert resp.status == 413
        error = (await resp.json())["error"]
    assert error["message"] == (f"request body of {len(body)} bytes is over the 100000-byte "
                                "limit for audio uploads (limits.max_audio_bytes)")
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
    assert fake.requests == []


async def test_a_chunked_upload_over_the_image_limit_is_refused_with_413(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await _start(start_gateway, gateway={"limits": {"max_image_bytes": 100_000}})
    body = form("b", ("model", b"images", None), ("image", b"x" * 300_000, "a.png"))

    async def chunked() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 65536):
            yield body[at:at + 65536]

    async with client.post(gateway.url + "/v1/images/edits", data=chunked(),
                           headers=_form_headers(gateway, "b")) as resp:
        assert resp.status == 413
        message = (await resp.json())["error"]["message"]
    assert message == ("request body is over the 100000-byte limit for image uploads "
                       "(limits.max_image_bytes)")


async def test_a_form_that_never_closes_is_a_400_in_openai_shape(
    media: Gateway, client: aiohttp.ClientSession
):
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=_form_headers(media, "b")) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["message"] == "the multipart form ended before its closing boundary"
    assert error["type"] == "invalid_request_error"


async def test_a_compressed_upload_reaches_the_upstream_as_one_request_of_its_real_length(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # aiohttp decodes the body: its Content-Length is the compressed one. Sent upstream
    # with that length, the decoded bytes past it would be read as a request of the
    # client's own making (here one for an admin route), ahead of the next client's.
    smuggled = b"GET /key/list HTTP/1.1\r\nHost: x\r\n\r\n"
    body = form("b", ("model", b"stt", None), ("file", SOUND, "a.wav")) + smuggled
    async with client.post(media.url + "/v1/audio/transcriptions", data=gzip.compress(body),
                           headers=_form_headers(media, "b", **{"Content-Encoding": "gzip"})
                           ) as resp:
        assert resp.status == 200, await resp.text()
    async with client.post(media.url + "/v1/chat/completions", headers=media.auth,
                           json={"model": "chat", "messages": [{"role": "user", "content": "x"}]}
                           ) as resp:
        assert resp.status == 200 and (await resp.json())["object"] == "chat.completion"
    assert [seen.path for seen in fake.requests] == ["/v1/audio/transcriptions",
                                                     "/v1/chat/completions"]
    assert fake.requests[0].body["file"][0]["size"] == len(SOUND)


@pytest.mark.parametrize(("field", "message"), [
    # A form parser upstream keeps a field's last value: the second would choose the
    # model, past the gateway's routing, the key's groups and its prices.
    ("model", "the form has more than one 'model' field"),
    # LiteLLM reads a form's fields as a JSON body's: an api_base would have it send the
    # model's key to the client's server.
    ("api_base", "'api_base' steers LiteLLM's routing"),
])
async def test_a_form_with_a_field_that_must_not_go_on_is_a_400_and_never_reaches_the_upstream(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream, field: str, message: str
):
    body = form("b", ("model", b"stt", None), (field, b"o1-pro", None), ("file", SOUND, "a.wav"))
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=_form_headers(media, "b")) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["message"].startswith(message) and error["param"] == field
    assert fake.requests == []


@pytest.mark.parametrize(("field", "message"), [
    ("model", "the form has more than one 'model' field"),
    ("api_base", "'api_base' steers LiteLLM's routing"),
])
async def test_a_field_that_must_not_go_on_after_a_large_file_stops_the_upload_with_a_400(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream, field: str, message: str
):
    big = SOUND * 256  # 4 MiB: it streams upstream before the field arrives
    body = form("b", ("model", b"stt", None), ("file", big, "a.wav"), (field, b"o1-pro", None))
    async with client.post(media.url + "/v1/audio/transcriptions", data=io.BytesIO(body),
                           headers=_form_headers(media, "b")) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"].startswith(message)
    assert "/v1/audio/transcriptions" not in fake.finished  # the upstream never had it whole


async def test_a_part_another_parser_reads_as_a_second_model_is_a_400_before_the_upstream(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # aiohttp's parser reads this part as field "x"; Starlette's, upstream, as a second
    # model, which it keeps: past the key's groups and the model's price.
    body = (form("b", ("model", b"stt", None), ("file", SOUND, "a.wav"))[: -len(b"--b--\r\n")]
            + b'--b\r\nContent-Disposition: form-data; name="x"\';name="model"\r\n\r\n'
            b"o1-pro\r\n--b--\r\n")
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=_form_headers(media, "b")) as resp:
        assert resp.status == 400
        assert "Content-Disposition" in (await resp.json())["error"]["message"]
    assert fake.requests == []


async def test_an_upload_that_does_not_decode_as_its_content_encoding_is_a_400(
    own_media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    media = own_media  # no earlier test's late log line may be in its logs
    body = gzip.compress(form("b", ("model", b"stt", None), ("file", SOUND, "a.wav")))
    broken = body[:200] + bytes(len(body) - 200)  # its deflate stream breaks off in zeros
    async with client.post(media.url + "/v1/audio/transcriptions", data=broken,
                           headers=_form_headers(media, "b", **{"Content-Encoding": "gzip"})
                           ) as resp:
        assert resp.status == 400
        assert "the request body" in (await resp.json())["error"]["message"]
    await asyncio.sleep(0.2)  # what the gateway logs after answering
    assert "Traceback" not in media.logs()


async def test_an_upload_with_two_content_encodings_is_a_415_and_never_reaches_the_upstream(
    media: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    body = gzip.compress(form("b", ("model", b"stt", None), ("file", SOUND, "a.wav")))
    headers = CIMultiDict(_form_headers(media, "b"))
    headers.add("Content-Encoding", "identity")
    headers.add("Content-Encoding", "gzip")
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=headers) as resp:
        assert resp.status == 415
        assert (await resp.json())["error"]["code"] == "unsupported_content_encoding"
    assert fake.requests == []


async def test_a_json_body_on_an_upload_route_is_a_400_naming_the_type(
    media: Gateway, client: aiohttp.ClientSession
):
    async with client.post(media.url + "/v1/audio/transcriptions", json={"model": "stt"},
                           headers=media.auth) as resp:
        assert resp.status == 400
        message = (await resp.json())["error"]["message"]
    assert message == "this route takes a multipart/form-data body, got application/json"


async def test_a_form_without_a_model_or_a_group_header_is_a_400(
    media: Gateway, client: aiohttp.ClientSession
):
    body = form("b", ("file", SOUND, "a.wav"))
    async with client.post(media.url + "/v1/audio/transcriptions", data=body,
                           headers=_form_headers(media, "b")) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["param"] == "model" and "X-HX-Model-Group" in error["message"]


async def test_a_client_leaving_mid_upload_cancels_the_upstream_request(
    media: Gateway, fake: FakeUpstream
):
    head = form("b", ("model", b"stt", None))[: -len(b"--b--\r\n")]
    head += b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    _, writer = await asyncio.open_connection("127.0.0.1", media.port)
    request_head = ("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {media.key}\r\n"
                    "Content-Type: multipart/form-data; boundary=b\r\n"
                    f"Content-Length: {len(head) + 10 * MiB}\r\n\r\n")
    writer.write(request_head.encode() + head + b"\x00" * MiB)
    await writer.drain()
    await wait_for(lambda: fake.upload_progress.get("/v1/audio/transcriptions", 0) > 0)
    writer.transport.abort()
    await wait_for(lambda: "/v1/audio/transcriptions" in fake.cancelled)
    assert fake.finished == []


async def test_an_upstream_refusing_an_upload_early_answers_the_client_at_once(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    fake.behave("gpt-4o-transcribe", status=413, early=True,
                error_message="Maximum content size limit (26214400) exceeded")
    with pytest.raises(openai.APIStatusError) as raised:
        await asyncio.wait_for(sdk.audio.transcriptions.create(
            model="transcribe", file=("a.wav", b"\x00" * (8 * MiB))), timeout=20)
    assert raised.value.status_code == 413
    assert "26214400" in raised.value.message


async def test_an_upload_fails_over_when_the_first_upstream_is_unreachable(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str], fake: FakeUpstream,
    dead_port: int,
):
    dead = f"http://127.0.0.1:{dead_port}"
    models = [*MEDIA_MODELS, {"name": "far", "tier_score": 1, "specializations": [],
                              "upstream_model": "whisper-far", "upstream": "dead",
                              "mode": "audio_transcription"}]
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "groups": {**GROUPS, "stt": ["far", "whisper"]}}}
    gateway = await start_gateway(models=models, routing=routing, gateway={
        "upstreams": {"default": {"url": upstream[1]}, "dead": {"url": dead}}})
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=0) as sdk:
        raw = await sdk.audio.transcriptions.with_raw_response.create(
            model="stt", file=("a.wav", SOUND * 128))
    assert raw.headers["X-HX-Model"] == "whisper"
    assert fake.seen_models() == ["whisper-1"]


async def test_an_upstream_error_after_the_upload_went_is_passed_on_not_retried(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
):
    fake.behave("gpt-4o-transcribe", status=503)
    with pytest.raises(openai.InternalServerError) as raised:
        await sdk.audio.transcriptions.create(model="stt", file=("a.wav", SOUND * 128))
    assert raised.value.status_code == 503
    assert fake.seen_models() == ["gpt-4o-transcribe"]


async def test_a_transcriptions_reported_usage_is_in_the_metrics(
    own_media: Gateway, own_sdk: openai.AsyncOpenAI, client: aiohttp.ClientSession
):
    media, sdk = own_media, own_sdk  # its metrics must count this test's tokens alone
    await sdk.audio.transcriptions.create(model="stt", file=("a.wav", SOUND))
    async with client.get(media.url + "/metrics", headers=media.auth) as resp:
        metrics = await resp.text()
    assert 'hxgw_tokens_total{kind="prompt",model="transcribe"} 14.0' in metrics
    assert 'endpoint="audio_transcriptions"' in metrics


async def _tpm_keys(start_gateway: StartGateway, tmp_path: Path) -> tuple[Gateway, list[str]]:
    """A media gateway with two keys of 1M tokens a minute each; their secrets."""
    secrets = [new_key("sk-app"), new_key("sk-app")]
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": f"app{n}", "key": secret, "tpm": 1_000_000}
                                             for n, secret in enumerate(secrets)]}))
    keys.chmod(0o600)
    return await _start(start_gateway, gateway={"auth": {"keys_file": str(keys)}}), secrets


async def _reserved(gateway: Gateway, secret: str, path: str, headers: dict[str, str] | None = None,
                    **request: Any) -> int:
    """The tokens a key's first request reserved, as its x-ratelimit-remaining-tokens says."""
    headers = {"Authorization": f"Bearer {secret}", **(headers or {})}
    async with aiohttp.ClientSession() as session, session.post(
            gateway.url + path, headers=headers, **request) as resp:
        assert resp.status == 200, await resp.text()
        return 1_000_000 - int(resp.headers["x-ratelimit-remaining-tokens"])


async def test_an_image_request_for_several_images_reserves_each_of_them(
    start_gateway: StartGateway, tmp_path: Path
):
    # n was not read: four images reserved for one, and a burst of them ran past a budget.
    gateway, (first, second) = await _tpm_keys(start_gateway, tmp_path)
    one = await _reserved(gateway, first, "/v1/images/generations",
                          json={"model": "images", "prompt": "a cat", "n": 1})
    four = await _reserved(gateway, second, "/v1/images/generations",
                           json={"model": "images", "prompt": "a cat", "n": 4})
    assert four - one == 3 * 256  # the default completion, for each image more


async def test_an_upload_reserves_for_what_its_file_weighs(
    start_gateway: StartGateway, tmp_path: Path
):
    # Each upload had reserved one token, whatever its size.
    gateway, (secret, _) = await _tpm_keys(start_gateway, tmp_path)
    sound = b"RIFF" + bytes(MiB)
    body = form("b", ("model", b"stt", None), ("file", sound, "a.wav"))
    reserved = await _reserved(gateway, secret, "/v1/audio/transcriptions", data=io.BytesIO(body),
                               headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert MiB // 512 < reserved < MiB // 512 + 300  # the file's weight, and its answer
