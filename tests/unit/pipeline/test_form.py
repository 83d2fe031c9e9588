"""The upload step and the body each candidate gets: the form read up to its model field,
that field rewritten, the rest streamed, and the length the upstream is told."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp.test_utils import make_mocked_request

from hxgw.config import Model
from hxgw.endpoints import TRANSCRIPTIONS
from hxgw.errors import BadRequest, PayloadTooLarge
from hxgw.pipeline.context import RequestContext
from hxgw.pipeline.exchange import Exchange
from hxgw.pipeline.form import HELD_AFTER_MODEL, read_form
from hxgw.state import GatewayState
from tests.unit.pipeline.offline import offline_state
from tests.unit.pipeline.test_multipart import FILE, close, part

WHISPER = Model(name="whisper", tier_score=0.5, specializations=(),
                upstream_model="whisper-large-v3")


class _Stream:
    """A request body arriving in the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def is_eof(self) -> bool:
        return not self.pieces

    async def readany(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayState]:
    limits = {"limits": {"max_audio_bytes": 5000}}
    yield offline_state(tmp_path_factory.mktemp("form"), gateway=limits)


@pytest.fixture(scope="module")
def roomy_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayState]:
    """Audio's default limit: room for a form longer than the gateway holds."""
    yield offline_state(tmp_path_factory.mktemp("roomy-form"))


def _ctx(state: GatewayState, pieces: list[bytes], *, length: bool = True,
         **headers: str) -> RequestContext:
    headers = {"Content-Type": f"multipart/form-data; boundary={B.decode()}", **headers}
    if length:
        headers["Content-Length"] = str(sum(map(len, pieces)))
    request = make_mocked_request("POST", TRANSCRIPTIONS.upstream_path, headers=headers,
                                  payload=_Stream(pieces))
    return RequestContext(Exchange(request), state, TRANSCRIPTIONS)


B = b"xYz0"


async def _sent(ctx: RequestContext) -> tuple[bytes, int | None]:
    """What the upstream would get for WHISPER, and the length it would be told."""
    got: list[tuple[bytes, int | None]] = []

    async def upstream(ctx: RequestContext) -> None:
        body = ctx.upstream_bodies.for_model(WHISPER)
        got.append((b"".join([chunk async for chunk in body]), body.length))

    await read_form(ctx, upstream)
    return got[0]


async def test_the_model_field_is_rewritten_and_the_rest_streamed_as_it_came(
    roomy_state: GatewayState
):
    body = part("model", b"stt") + part("file", FILE * 100, "a.wav") + close()
    assert len(body) > HELD_AFTER_MODEL
    ctx = _ctx(roomy_state, [body[:60], body[60:700], body[700:]])
    sent, length = await _sent(ctx)
    assert sent == body.replace(b"stt", b"whisper-large-v3")
    assert length == len(sent)
    assert ctx.body == {"model": "stt"} and ctx.upload is not None and ctx.upload.consumed


@pytest.mark.parametrize("length", [True, False], ids=["sized", "chunked"])
async def test_a_small_form_whose_end_comes_after_its_model_field_is_held_whole(
    state: GatewayState, length: bool
):
    body = part("model", b"stt") + part("file", FILE, "a.wav") + close()
    ctx = _ctx(state, [body[:60], body[60:700], body[700:]], length=length)
    sent, _ = await _sent(ctx)
    assert sent == body.replace(b"stt", b"whisper-large-v3")
    assert ctx.upload is not None and not ctx.upload.consumed


async def test_a_file_before_the_model_is_spooled_then_sent_first(state: GatewayState):
    body = part("file", FILE, "a.wav") + part("model", b"stt") + close()
    sent, length = await _sent(_ctx(state, [body[i:i + 7] for i in range(0, len(body), 7)]))
    assert sent == body.replace(b"\r\n\r\nstt\r\n", b"\r\n\r\nwhisper-large-v3\r\n")
    assert length == len(sent)


async def test_a_chunked_upload_longer_than_the_gateway_holds_goes_on_chunked(
    roomy_state: GatewayState
):
    body = part("model", b"stt") + part("file", FILE * 100, "a.wav") + close()
    sent, length = await _sent(_ctx(roomy_state, [body[:100], body[100:]], length=False))
    assert (len(sent), length) == (len(body) + len("whisper-large-v3") - 3, None)


async def test_a_form_without_a_model_field_is_a_400_naming_the_header(state: GatewayState):
    body = part("file", FILE, "a.wav") + close()
    with pytest.raises(BadRequest, match="X-HX-Model-Group") as raised:
        await _sent(_ctx(state, [body]))
    assert raised.value.param == "model"


async def test_with_the_group_header_a_model_field_is_added_first(state: GatewayState):
    body = b"preamble\r\n" + part("file", FILE, "a.wav") + close()
    ctx = _ctx(state, [body[:50], body[50:]], **{"X-HX-Model-Group": "chat"})
    sent, length = await _sent(ctx)
    added = part("model", b"whisper-large-v3")
    assert sent == added + body.removeprefix(b"preamble\r\n")
    assert length == len(sent) and ctx.body == {}


async def test_an_upload_past_the_limit_while_streaming_is_a_413(state: GatewayState):
    body = part("model", b"stt") + part("file", b"x" * 6000, "a.wav") + close()
    with pytest.raises(PayloadTooLarge, match="5000-byte limit for audio uploads"):
        await _sent(_ctx(state, [body[:100], body[100:3000], body[3000:]], length=False))


@pytest.mark.parametrize("order", ["model first", "model last"])
async def test_a_form_all_read_by_its_model_field_is_still_held_whole_after_it_went(
    state: GatewayState, order: str
):
    # Its end, read after the rest went, takes nothing from the client that cannot be
    # sent again: the next candidate may have the form.
    fields = [part("model", b"stt"), part("file", FILE, "a.wav")]
    body = b"".join(fields if order == "model first" else fields[::-1]) + close()
    ctx = _ctx(state, [body])
    await _sent(ctx)
    assert ctx.upload is not None and not ctx.upload.consumed
