"""Client faults during an upload, on a transcription and on POST /v1/files: a client
that trickles slower than `limits.client_idle_timeout`, one that leaves mid-upload,
and forms that are not forms.

Expected: the trickler gets a 408 (or its connection closed), the leaver's upstream
request is aborted, a broken form gets a 400 in OpenAI's shape and never a 500;
nothing is held afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.fake_upstream import FakeUpstream
from tests.faults.forms import (
    FILES,
    NAMES,
    PATHS,
    TRANSCRIPTIONS,
    MiB,
    Sent,
    clean_if,
    form_head,
    form_tail,
    media_models,
    media_routing,
    upload,
)
from tests.faults.harness import Outcome, check_leaks
from tests.fixtures import wait_for


@pytest.mark.parametrize("path", PATHS)
async def test_a_client_trickling_its_upload_slower_than_the_idle_timeout_gets_408(
    launch, fake: FakeUpstream, row, path: str
):
    gateway, base = await launch(models=media_models(), routing=media_routing(),
                                 limits={"client_idle_timeout": 1})
    line = row(f"{NAMES[path]}: client trickles its upload (1 byte / 2.5 s)", expect="clean")

    async def trickle():
        yield form_head(path) + b"\x01" * 65536
        for _ in range(3):
            await asyncio.sleep(2.5)
            yield b"\x01"

    async def one() -> None:
        outcome = await upload(gateway, path, trickle(), length=len(form_head(path)) + MiB)
        line.count(clean_if(outcome, 408, closed=True))

    await asyncio.gather(*(one() for _ in range(3)))
    # The upstream request that had started is aborted with it.
    await wait_for(lambda: len(fake.uploads_cancelled) >= len(fake.uploads_started), timeout=5)
    await check_leaks(base, line, concurrency=3)
    line.assert_clean()


@pytest.mark.parametrize("path", PATHS)
async def test_a_client_leaving_mid_upload_aborts_the_upstream_request(
    launch, fake: FakeUpstream, row, path: str
):
    gateway, base = await launch(models=media_models(), routing=media_routing())
    line = row(f"{NAMES[path]}: client leaves mid-upload")
    n = 6
    leave = asyncio.Event()

    async def pieces():
        yield form_head(path) + b"\x01" * MiB
        await leave.wait()  # every upload has reached the upstream
        yield b"\x01"

    async def one() -> Outcome:
        return await upload(gateway, path, pieces(), length=len(form_head(path)) + 16 * MiB,
                            sent=Sent(), leave_after=len(form_head(path)) + MiB + 1)

    clients = [asyncio.create_task(one()) for _ in range(n)]
    await wait_for(lambda: len(fake.uploads_started) == n, timeout=10)
    leave.set()
    for outcome in await asyncio.gather(*clients):
        assert outcome.kind == "ok", outcome.detail
    aborted = await _settled(lambda: len(fake.uploads_cancelled), n)
    for i in range(n):  # "succeeded": the upstream request was aborted in time
        line.count(Outcome("ok" if i < aborted else "hang",
                           detail="upstream upload still running"))
    await check_leaks(base, line, concurrency=n)
    line.assert_clean()


async def _settled(count, n: int, bound: float = 5.0) -> int:
    with contextlib.suppress(AssertionError):
        await wait_for(lambda: count() >= n, timeout=bound)
    return count()


BAD_FORMS: list[tuple[str, str | None, bytes]] = [
    ("never closed", None, form_head(TRANSCRIPTIONS) + b"abc"),
    ("part head of 20 KiB", None, b"--hxfault\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\nx"
     + form_tail()),
    ("no boundary parameter", "multipart/form-data", form_head(TRANSCRIPTIONS) + form_tail()),
    ("empty boundary", 'multipart/form-data; boundary=""', form_head(TRANSCRIPTIONS)),
    ("boundary of 71 characters", "multipart/form-data; boundary=" + "b" * 71, b"--" + b"b" * 71),
    ("garbage", None, bytes(range(256)) * 128),
    ("empty body", None, b""),
    ("junk after a boundary", None, b"--hxfault junk\r\n\r\n" + form_tail()),
    ("a model value of 2 KiB", None, b'--hxfault\r\nContent-Disposition: form-data; '
     b'name="model"\r\n\r\n' + b"m" * 2048 + form_tail()),
    ("a model value not UTF-8", None, b'--hxfault\r\nContent-Disposition: form-data; '
     b'name="model"\r\n\r\n\xff\xfe' + form_tail()),
    ("not a form", "application/json", b'{"model": "stt"}'),
]


async def test_malformed_forms_get_400_never_500(launch, fake: FakeUpstream, row):
    """Each on a transcription (the gateway reads the form to its model field) and on
    POST /v1/files (the form goes as sent: the upstream judges all but the framing)."""
    gateway, base = await launch(models=media_models(), routing=media_routing())
    line = row(f"malformed forms ({len(BAD_FORMS)} x transcription, file upload)",
               expect="clean")
    for path in (TRANSCRIPTIONS, FILES):
        for name, content_type, body in BAD_FORMS:
            for chunked in (False, True):
                outcome = await upload(gateway, path, [body] if body else [],
                                       length=None if chunked else len(body),
                                       content_type=content_type, bound=10)
                outcome = clean_if(outcome, 400)
                if outcome.kind != "clean":
                    outcome.detail = f"{path} {name} (chunked: {chunked}): {outcome.detail}"
                line.count(outcome)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()
