"""The fake Anthropic upstream plays each fault a test asks of its model as the fake
OpenAI routes play it, over a real socket: a gateway test of an Anthropic route meets
the fault it asked for, not a clean answer."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import pytest

from tests import fake_anthropic
from tests.fake_upstream import FakeUpstream

HUNG = 0.3
"""How long a body must stop coming to count as stalled for good (the fake waits an hour)."""
GUARD = 5
"""What a fault that ends the answer is given to end it: a hang guard, never a measure."""
START = ["message_start", "content_block_start", "ping"]


async def ask(client: aiohttp.ClientSession, url: str, *,
              stream: bool = False) -> aiohttp.ClientResponse:
    body = {"model": "m-alpha", "max_tokens": 16, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    async with asyncio.timeout(GUARD):
        return await client.post(f"{url}/v1/messages", json=body)


async def read_until_stalled(response: aiohttp.ClientResponse) -> bytes:
    """What arrives of the body before it stops coming for `HUNG` seconds, or all of it."""
    got = b""
    with contextlib.suppress(TimeoutError):
        while not response.content.at_eof():
            async with asyncio.timeout(HUNG):
                got += await response.content.readany()
    return got


def event_names(raw: bytes) -> list[str]:
    """The names of the whole events in `raw`, in order (a broken-off last one left out)."""
    whole = raw.split(b"\n\n")[:-1]
    return [line.removeprefix(b"event: ").decode() for event in whole
            for line in event.split(b"\n") if line.startswith(b"event: ")]


async def refusal(client: aiohttp.ClientSession, url: str,
                  caplog: pytest.LogCaptureFixture) -> str:
    """Why the fake refused to answer: the handler raised, and aiohttp logged it and
    answered 500 (a test of the gateway sees that 500, and the error in its log)."""
    async with await ask(client, url) as response:
        assert response.status == 500
    raised = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [type(e) for e in raised] == [fake_anthropic.NotForAnthropic]
    return str(raised[0])


def whole_message() -> bytes:
    return json.dumps(fake_anthropic.message("m-alpha", FakeUpstream().behave(
        "m-alpha").content.split(" "))).encode()


async def test_header_delay_holds_the_answer_back_at_least_that_long(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", header_delay=0.2)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    async with await ask(client, url) as response:
        assert response.status == 200
    assert loop.time() - asked >= 0.2  # a lower bound: no slow machine can fail it


async def test_reset_before_headers_drops_the_connection_unanswered(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", reset_before_headers=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await ask(client, url)


@pytest.mark.parametrize(("stream", "content_type"),
                         [(False, "application/json"), (True, "text/event-stream")])
async def test_silent_after_headers_sends_anthropics_headers_then_nothing(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession,
    stream: bool, content_type: str,
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", silent_after_headers=True)
    async with await ask(client, url, stream=stream) as response:
        assert (response.status, response.content_type) == (200, content_type)
        assert response.headers["request-id"] == fake_anthropic.REQUEST_ID
        assert await read_until_stalled(response) == b""
        assert not response.content.at_eof()


async def test_hang_after_chunks_stalls_the_stream_after_that_many_deltas(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", hang_after_chunks=2)
    async with await ask(client, url, stream=True) as response:
        got = await read_until_stalled(response)
        assert not response.content.at_eof()
    assert event_names(got) == [*START, "content_block_delta", "content_block_delta"]


async def test_garbage_after_chunks_breaks_off_a_delta_then_resets(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", garbage_after_chunks=2)
    got = b""
    async with await ask(client, url, stream=True) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with asyncio.timeout(GUARD):
                async for piece in response.content.iter_any():
                    got += piece
    assert event_names(got) == [*START, "content_block_delta", "content_block_delta"]
    broken = got.rsplit(b"\n\n", 1)[1]
    assert broken.startswith(b"event: content_block_delta\ndata: {")


async def test_hang_mid_body_sends_half_the_message_then_nothing(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", hang_mid_body=True)
    async with await ask(client, url) as response:
        got = await read_until_stalled(response)
        assert not response.content.at_eof()
        assert response.content_length == len(whole_message())
    assert 0 < len(got) < len(whole_message()) and whole_message().startswith(got)


async def test_reset_after_chunks_cuts_a_whole_message_in_its_middle(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", reset_after_chunks=2)
    async with await ask(client, url) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with asyncio.timeout(GUARD):
                await response.read()


@pytest.mark.parametrize("stream", [False, True])
async def test_headers_are_sent_beside_anthropics_own(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession, stream: bool
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", headers={"anthropic-ratelimit-requests-remaining": "7"})
    async with await ask(client, url, stream=stream) as response:
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "7"
        assert response.headers["request-id"] == fake_anthropic.REQUEST_ID


async def test_a_whole_message_is_sent_with_its_content_length(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    async with await ask(client, upstream[1]) as response:
        assert response.content_length == len(whole_message())
        assert await response.read() == whole_message()


async def test_content_length_off_sends_the_whole_message_chunked(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", content_length=False)
    async with await ask(client, url) as response:
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert await response.read() == whole_message()


async def test_error_type_replaces_the_type_anthropic_gives_the_status(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", status=500, error_type="overloaded_error", error_message="busy")
    async with await ask(client, url) as response:
        assert response.status == 500
        assert response.headers["request-id"] == fake_anthropic.REQUEST_ID
        assert await response.json() == {
            "type": "error", "error": {"type": "overloaded_error", "message": "busy"},
            "request_id": fake_anthropic.REQUEST_ID}


async def test_headers_are_sent_beside_an_anthropic_error(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", status=429, retry_after="3",
                headers={"anthropic-ratelimit-requests-remaining": "0"})
    async with await ask(client, url) as response:
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize("setting", [{"error_code": "rate_limit_exceeded"},
                                     {"retry_after_ms": "1500"}])
async def test_an_error_part_anthropic_has_no_place_for_is_refused_loudly(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture, setting: dict[str, str],
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", status=429, **setting)
    assert (await refusal(client, url, caplog)).startswith(f"{next(iter(setting))}:")


async def test_an_openai_shaped_error_carries_its_code_and_retry_after_ms(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", status=429, openai_shaped=True, error_code="rate_limit_exceeded",
                retry_after_ms="1500")
    async with await ask(client, url) as response:
        assert response.headers["retry-after-ms"] == "1500"
        assert (await response.json())["error"]["code"] == "rate_limit_exceeded"


async def test_count_tokens_answers_an_error_as_messages_does(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", status=400, error_type="not_found_error", headers={"x-extra": "1"})
    body = {"model": "m-alpha", "messages": [{"role": "user", "content": "hi"}]}
    async with client.post(f"{url}/v1/messages/count_tokens", json=body) as response:
        assert (response.status, response.headers["x-extra"]) == (400, "1")
        assert (await response.json())["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("setting", [{"sse_extras": True}, {"body_bytes": 4096},
                                     {"stream_bytes": 4096}])
async def test_a_setting_only_the_openai_routes_play_is_refused_loudly(
    upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture, setting: dict[str, object],
) -> None:
    fake, url = upstream
    fake.behave("m-alpha", **setting)
    assert (await refusal(client, url, caplog)).startswith(f"{next(iter(setting))}:")
