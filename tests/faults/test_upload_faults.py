"""Upstream faults during an upload, on a transcription (its form's `model` rewritten)
and on POST /v1/files (the form as sent): a reset, an upstream that stops reading, an
early 413; and an upload over its family's limit found mid-stream.

Expected everywhere: an answer in OpenAI's shape that says what happened, never a
hang or a 500; the gateway holds no more of the body than its buffers; the upstream
connection is closed; other requests are served meanwhile.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.forms import (
    NAMES,
    PATHS,
    MiB,
    Sent,
    clean_if,
    filler,
    form_head,
    form_tail,
    media_models,
    media_routing,
    upload,
)
from tests.faults.harness import PeakRss, call, check_leaks
from tests.fixtures import wait_for


def _declared(path: str, size: int) -> tuple[list[bytes] | object, int]:
    """A form of `size` file bytes, its pieces made as they go, and its length."""
    head, tail = form_head(path), form_tail()

    async def pieces():
        yield head
        async for piece in filler(size):
            yield piece
        yield tail

    return pieces(), len(head) + size + len(tail)


async def _cancelled(fake: FakeUpstream, n: int) -> None:
    await wait_for(lambda: len(fake.uploads_cancelled) >= n, timeout=5)


@pytest.mark.parametrize("path", PATHS)
async def test_an_upstream_reset_mid_upload_is_a_502_and_others_are_still_served(
    launch, fake: FakeUpstream, row, path: str
):
    gateway, base = await launch(models=media_models(), routing=media_routing())
    fake.upload_faults[path] = ("reset", 2 * MiB)
    line = row(f"{NAMES[path]}: upstream resets mid-upload", expect="any")

    async def one() -> None:
        pieces, length = _declared(path, 16 * MiB)
        outcome = await upload(gateway, path, pieces, length=length)
        line.count(clean_if(outcome, 502))

    async def chat(session: aiohttp.ClientSession) -> None:
        line.count(await call(session, gateway, stream=False))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one() for _ in range(4)), *(chat(session) for _ in range(4)))
    assert (line.succeeded, line.clean_errors) == (4, 4)  # the chats served, each upload 502
    await check_leaks(base, line, concurrency=4)
    line.assert_clean(expect="any")


@pytest.mark.parametrize("path", PATHS)
async def test_an_upstream_that_stops_reading_slows_the_client_and_the_total_timeout_ends_it(
    launch, fake: FakeUpstream, row, path: str
):
    """256 MiB offered by each of two clients at full speed to an upstream that stopped
    reading after 1 MiB: what the client gets into its socket is bounded by the buffers
    on the way, the gateway's memory does not grow with it, and `timeouts.total` ends
    the request with a 504."""
    gateway, base = await launch(models=media_models(), routing=media_routing(),
                                 timeouts={"total": 4},
                                 limits={"max_audio_bytes": 512 * MiB})
    fake.upload_faults[path] = ("stall", MiB)
    line = row(f"{NAMES[path]}: upstream stops reading mid-upload (total timeout)",
               expect="clean")
    sent = [Sent(), Sent()]

    async def one(counter: Sent) -> None:
        pieces, length = _declared(path, 256 * MiB)
        outcome = await upload(gateway, path, pieces, length=length, sent=counter)
        line.count(clean_if(outcome, 504, 502))

    async with PeakRss(base.probe) as peak:
        await asyncio.gather(*(one(counter) for counter in sent))
    line.notes.append(f"the clients got {[s.bytes // MiB for s in sent]} MiB into their sockets")
    assert all(s.bytes < 64 * MiB for s in sent), "the client was not slowed down"
    line.bound_peak(peak, 24)
    # The stalled upstream, its reading paused, does not notice: the gateway's side closed
    # (check_leaks counts its upstream sockets).
    await check_leaks(base, line, concurrency=2)
    line.assert_clean()


@pytest.mark.parametrize("path", PATHS)
async def test_an_upstream_413_while_the_client_is_still_sending_is_answered_at_once(
    launch, fake: FakeUpstream, row, path: str
):
    gateway, base = await launch(models=media_models(), routing=media_routing())
    fake.upload_faults[path] = ("refuse", 256 * 1024)
    line = row(f"{NAMES[path]}: upstream answers 413 mid-upload", expect="clean")

    async def one() -> None:
        pieces, length = _declared(path, 24 * MiB)
        outcome = line.count(clean_if(await upload(gateway, path, pieces, length=length), 413))
        assert "Request entity too large" in (outcome.error or {}).get("message", "")

    await asyncio.gather(*(one() for _ in range(4)))
    await check_leaks(base, line, concurrency=4)
    line.assert_clean()


@pytest.mark.parametrize("path", PATHS)
async def test_a_chunked_upload_over_its_family_limit_gets_413_mid_stream(
    launch, fake: FakeUpstream, row, path: str
):
    """No Content-Length: the limit is found while the form streams upstream."""
    gateway, base = await launch(models=media_models(), routing=media_routing(),
                                 limits={"max_audio_bytes": MiB, "max_file_bytes": MiB})
    line = row(f"{NAMES[path]}: chunked upload over the limit, mid-stream", expect="clean")

    async def one() -> None:
        pieces, _ = _declared(path, 8 * MiB)
        outcome = line.count(clean_if(await upload(gateway, path, pieces, length=None), 413))
        assert (outcome.error or {}).get("code") == "request_too_large", outcome.text

    await asyncio.gather(*(one() for _ in range(4)))
    await check_leaks(base, line, concurrency=4)
    line.assert_clean()
