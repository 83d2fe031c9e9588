"""An upload whose first candidate fails mid-way, and the wait for an upload's answer,
as docs/uploads.md says them: the next candidate is tried only while no byte of the
form has gone straight from the client to an upstream (the form held whole: a small
one, or one whose `model` came last); after that the client gets the gateway's 502 in
OpenAI's shape, never a hang or a 500. The wait for the answer starts once the form is
sent (a client slow to send it is not an upstream slow to answer), and is a plain
answer's, `timeouts.answer`.

Each scenario runs on a transcription group of two models behind the one fake
upstream, whose faults are set per upstream model (tests/fake_media.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.forms import (
    BOUNDARY,
    TRANSCRIPTIONS,
    MiB,
    clean_if,
    filler,
    form_head,
    form_tail,
    media_models,
    media_routing,
    upload,
)
from tests.faults.harness import check_leaks
from tests.fixtures import wait_for

FIRST, SECOND = "whisper-1", "gpt-4o-transcribe"
"""The upstream ids of the group's models, in the order they are tried."""


def two_models() -> list[dict[str, Any]]:
    return [*media_models(), {"name": "spare", "tier_score": 0.8, "specializations": [],
                              "upstream_model": SECOND, "mode": "audio_transcription"}]


def two_routing() -> dict[str, Any]:
    routing = media_routing()
    routing["routing"]["groups"]["stt"] = ["transcribe", "spare"]
    return routing


def file_first(size: int) -> bytes:
    """A form as the node SDK sends a `toFile` file: the file, then `model`."""
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"'
            f"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + b"\x01" * size + (
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nstt'
            f"\r\n--{BOUNDARY}--\r\n").encode()


def model_first(size: int) -> bytes:
    return form_head(TRANSCRIPTIONS) + b"\x01" * size + form_tail()


async def test_a_reset_after_the_form_went_straight_upstream_is_a_502_and_no_other_model_is_tried(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch(models=two_models(), routing=two_routing())
    fake.upload_faults[TRANSCRIPTIONS, FIRST] = ("reset", 2 * MiB)
    line = row("transcription: first model's upstream resets mid-upload", expect="clean")
    head, tail = form_head(TRANSCRIPTIONS), form_tail()

    async def pieces() -> AsyncIterator[bytes]:
        yield head
        async for piece in filler(16 * MiB):
            yield piece
        yield tail

    outcome = line.count(clean_if(await upload(
        gateway, TRANSCRIPTIONS, pieces(), length=len(head) + 16 * MiB + len(tail)), 502))
    assert "transcribe (reset)" in (outcome.error or {}).get("message", ""), outcome.text
    assert fake.uploads_started == [TRANSCRIPTIONS]  # the spare model never asked
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


@pytest.mark.parametrize(("kind", "form", "size"), [
    pytest.param("small", model_first, 16 * 1024, id="small"),
    pytest.param("model last", file_first, 2 * MiB, id="model-last"),
])
async def test_a_form_held_whole_goes_whole_to_the_next_model_when_the_first_one_resets(
    launch, fake: FakeUpstream, row, kind: str, form: Callable[[int], bytes], size: int
):
    gateway, base = await launch(models=two_models(), routing=two_routing())
    fake.upload_faults[TRANSCRIPTIONS, FIRST] = ("reset", 4 * 1024)
    line = row(f"transcription, {kind}, held whole: first model's upstream resets")
    body = form(size)

    outcome = line.count(clean_if(await upload(gateway, TRANSCRIPTIONS, [body],
                                               length=len(body)), 200))
    assert outcome.headers.get("X-HX-Model") == "spare", outcome.text
    seen = fake.requests[-1]
    assert (seen.model, seen.body["file"][0]["size"]) == (SECOND, size)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_a_small_form_whose_end_comes_after_its_model_field_is_held_whole_all_the_same(
    launch, fake: FakeUpstream, row
):
    """Its end comes in a read of its own: it had gone straight from the client, and the
    reset of the first model had been a 502 or not by how the client's writes fell."""
    gateway, base = await launch(models=two_models(), routing=two_routing())
    fake.upload_faults[TRANSCRIPTIONS, FIRST] = ("reset", 4 * 1024)
    line = row("transcription, small, its end sent later: first model's upstream resets")
    head, tail = form_head(TRANSCRIPTIONS), form_tail()

    async def pieces() -> AsyncIterator[bytes]:
        yield head
        await asyncio.sleep(0.2)
        yield b"\x01" * 16 * 1024 + tail

    outcome = line.count(clean_if(await upload(
        gateway, TRANSCRIPTIONS, pieces(), length=len(head) + 16 * 1024 + len(tail)), 200))
    assert outcome.headers.get("X-HX-Model") == "spare", outcome.text
    seen = fake.requests[-1]
    assert (seen.model, seen.body["file"][0]["size"]) == (SECOND, 16 * 1024)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_a_client_slow_to_send_its_upload_is_not_timed_out_as_a_slow_upstream(
    launch, fake: FakeUpstream, row
):
    """The form takes three times the upstream's timeouts to come; the upstream answers
    as soon as it has it."""
    gateway, base = await launch(models=two_models(), routing=two_routing(),
                                 timeouts={"first_byte": 0.5, "answer": 0.5})
    line = row("transcription sent slowly by its client (upstream timeouts)")
    head, tail = form_head(TRANSCRIPTIONS), form_tail()

    async def pieces() -> AsyncIterator[bytes]:
        yield head
        for _ in range(6):
            await asyncio.sleep(0.25)
            yield b"\x01" * 1024
        yield tail

    outcome = line.count(clean_if(await upload(
        gateway, TRANSCRIPTIONS, pieces(), length=len(head) + 6 * 1024 + len(tail)), 200))
    assert outcome.headers.get("X-HX-Model") == "transcribe", outcome.text
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_an_upstream_silent_after_the_form_was_sent_is_a_504_within_the_answer_timeout(
    launch, fake: FakeUpstream, row
):
    """`timeouts.total` and a stream's `first_byte` are out of reach of the client's
    patience: only the plain answer's timeout can end it. Its 2 MiB went straight
    upstream, more than the gateway holds, so the spare model is not tried."""
    gateway, base = await launch(models=two_models(), routing=two_routing(),
                                 timeouts={"first_byte": 60, "answer": 0.5, "total": 60})
    fake.behave(FIRST, header_delay=60)
    line = row("transcription sent, its upstream silent (answer timeout)", expect="clean")
    body = model_first(2 * MiB)

    outcome = line.count(clean_if(await upload(gateway, TRANSCRIPTIONS, [body],
                                               length=len(body), bound=10), 504))
    assert (outcome.error or {}).get("code") == "upstream_timeout", outcome.text
    await wait_for(lambda: TRANSCRIPTIONS in fake.cancelled, timeout=5)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_a_plain_upload_answer_may_take_longer_than_a_stream_s_first_byte(
    launch, fake: FakeUpstream, row
):
    """A transcription's or an image edit's answer, plain, comes whole: as a chat's, it is
    waited for `timeouts.answer`, not cut at a stream's `first_byte` after the upstream
    did the work (and this form, held whole, sent to the next model too, billed twice)."""
    gateway, base = await launch(models=two_models(), routing=two_routing(),
                                 timeouts={"first_byte": 0.3, "answer": 15})
    fake.behave(FIRST, header_delay=1)
    line = row("transcription answered after a stream's first-byte timeout")
    body = model_first(16 * 1024)

    outcome = line.count(clean_if(await upload(gateway, TRANSCRIPTIONS, [body],
                                               length=len(body)), 200))
    assert outcome.headers.get("X-HX-Model") == "transcribe", outcome.text
    assert fake.uploads_started == [TRANSCRIPTIONS]
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()
