"""Upstream faults on the files routes: a list answer that is huge or not JSON (the
gateway reads a list whole to rebind its ids, up to rebind.MAX_HELD_ANSWER), and a
file's content that stops mid-body.

Expected: memory bounded whatever the list's size; a list over the cap is a clean 502
(at once when its Content-Length says so), one that is not JSON is passed through as
it came; a content that stalls is cut by the idle timeout (the client sees the body
end before its Content-Length).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest

from hxgw.upstream.affinity import bind
from tests.fake_files import Scripted
from tests.fake_upstream import FakeUpstream
from tests.faults.harness import HANG_BOUND, Outcome, PeakRss, body_verdict, check_leaks
from tests.fixtures import Gateway, wait_for

FILE = {"object": "file", "bytes": 120, "created_at": 1700000000, "filename": "input.jsonl",
        "purpose": "batch", "status": "processed", "expires_at": None, "status_details": None}


def file_list(size: int) -> tuple[Iterator[bytes], int]:
    """A valid OpenAI list of about `size` bytes of file objects, made as it is sent."""
    item = json.dumps({"id": "file-%012d", **FILE}).encode()
    count = size // (len(item) + 1)

    def pieces() -> Iterator[bytes]:
        yield b'{"object": "list", "data": ['
        for start in range(0, count, 1000):
            yield b",".join(item % i for i in range(start, min(count, start + 1000))) + (
                b"," if start + 1000 < count else b"")
        yield b'], "first_id": "file-000000000000", "has_more": false}'

    return pieces(), count


async def get(gateway: Gateway, path: str) -> tuple[Outcome, bytes]:
    """A GET, classified: a 200 read whole is ok, a 200 cut short is clean."""
    try:
        async with asyncio.timeout(HANG_BOUND), aiohttp.ClientSession() as session, \
                session.get(gateway.url + path, headers=gateway.auth) as resp:
            try:
                raw = await resp.read()
            except aiohttp.ClientPayloadError as exc:
                return Outcome("clean", resp.status, detail=f"cut body: {exc}"), b""
    except TimeoutError:
        return Outcome("hang"), b""
    if resp.status == 200:
        return Outcome("ok", 200), raw
    kind, detail, error = body_verdict(resp.status, raw)
    return Outcome(kind, resp.status, raw[:300].decode("utf-8", "replace"), detail,
                   error=error), raw


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_file_list_over_the_rebinding_cap_is_a_502_with_memory_bounded(
    launch, fake: FakeUpstream, row, chunked: bool
):
    """24 MiB: ten times OpenAI's largest page (10,000 files), and parsed whole it
    would cost the gateway about nine times its size."""
    gateway, base = await launch()
    size = 24 * 1024 * 1024
    length = sum(len(p) for p in file_list(size)[0])
    fake.files.list_answer = Scripted("application/json", lambda: file_list(size)[0],
                                      None if chunked else length)
    framing = "chunked" if chunked else "Content-Length"
    line = row(f"file list of {size >> 20} MiB ({framing}), over the rebinding cap",
               expect="clean")
    async with PeakRss(base.probe) as peak:
        outcome, _ = await get(gateway, "/v1/files")
    line.count(outcome)
    assert outcome.status == 502, outcome.text
    line.bound_peak(peak, 32)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_a_large_file_list_under_the_cap_is_rebound_with_memory_bounded(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch()
    _, count = file_list(4 * 1024 * 1024)
    fake.files.list_answer = Scripted("application/json", lambda: file_list(4 << 20)[0])
    line = row(f"file list of 4 MiB ({count} files), rebound whole")
    async with PeakRss(base.probe) as peak:
        outcome, raw = await get(gateway, "/v1/files")
    line.count(outcome)
    data = json.loads(raw)["data"]
    assert len(data) == count and data[-1]["id"].startswith("file-hx"), raw[-200:]
    line.bound_peak(peak, 48)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


@pytest.mark.parametrize("content_type", ["text/html", "application/json"])
async def test_a_file_list_that_is_not_json_is_passed_through_as_it_came(
    launch, fake: FakeUpstream, row, content_type: str
):
    gateway, base = await launch()
    body = b"<html><body>502 Bad Gateway " + b"\xff\xfe" + b"x" * 200_000 + b"</body></html>"
    fake.files.list_answer = Scripted(content_type, lambda: (body[:1000], body[1000:]))
    line = row(f"file list answered with a non-JSON body ({content_type})")
    for _ in range(4):
        outcome, raw = await get(gateway, "/v1/files")
        if raw != body:
            outcome = Outcome("unexpected", outcome.status, detail=f"not verbatim: {raw[:80]!r}")
        line.count(outcome)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_a_file_content_that_stalls_mid_body_is_cut_by_the_idle_timeout(
    launch, fake: FakeUpstream, row
):
    gateway, base = await launch(timeouts={"idle": 1})
    held = fake.files.add_file(b"x" * 200_000)
    fake.files.content_hangs_after = 65536
    path = f"/v1/files/{bind('upstream', 'default', held['id'])}/content"
    line = row("file content: upstream stalls mid-body (idle timeout)", expect="clean")
    outcomes = await asyncio.gather(*(get(gateway, path) for _ in range(4)))
    for outcome, _ in outcomes:
        line.count(outcome)
    # The upstream's handlers are cancelled: the gateway closed their connections.
    await wait_for(lambda: base.probe.snapshot().upstream_sockets <= 1, timeout=5)
    await check_leaks(base, line, concurrency=4)
    line.assert_clean()
