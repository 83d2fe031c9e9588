"""A file uploaded through the gateway, named in a chat's or a Responses request's body:
the upstream that holds it gets its own id for it, and only a model on that upstream
the request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, new_key

upstream, gateway = one_gateway.upstream, one_gateway.gateway
PDF = b"%PDF-1.4 a file a model reads"


def _sdk(gateway: Gateway, key: str | None = None, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key or gateway.key,
                              max_retries=0, default_headers=headers)


def _chat_naming(file_id: str) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "what does it say?"},
                                         {"type": "file", "file": {"file_id": file_id}}]}]


async def test_a_chat_naming_an_uploaded_file_reaches_the_upstream_with_its_own_id(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        made = await sdk.files.create(file=("a.pdf", PDF), purpose="user_data")
        await sdk.chat.completions.create(model="chat", messages=_chat_naming(made.id))
    [held] = fake.files.files
    seen = fake.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body["messages"][0]["content"][1]["file"]["file_id"] == held != made.id


async def test_a_response_naming_an_uploaded_file_reaches_the_upstream_with_its_own_id(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        made = await sdk.files.create(file=("a.pdf", PDF), purpose="user_data")
        await sdk.responses.create(model="chat", input=[{"role": "user", "content": [
            {"type": "input_file", "file_id": made.id},
            {"type": "input_text", "text": "what does it say?"}]}])
    [held] = fake.files.files
    assert fake.requests[-1].body["input"][0]["content"][0]["file_id"] == held


async def test_an_id_the_gateway_did_not_make_goes_on_as_it_came(
    gateway: Gateway, fake: FakeUpstream
):
    async with _sdk(gateway) as sdk:
        await sdk.chat.completions.create(model="chat", messages=_chat_naming("file-abc123"))
    assert fake.requests[-1].body["messages"][0]["content"][1]["file"]["file_id"] == "file-abc123"


async def test_a_key_naming_a_file_another_key_made_is_told_there_is_no_such_file(
    start_gateway: StartGateway, fake: FakeUpstream, tmp_path: Path
):
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)}})
    async with _sdk(gateway) as sdk:  # the master key's
        made = await sdk.files.create(file=("a.pdf", PDF), purpose="user_data")
    async with _sdk(gateway, secret) as app:
        try:
            await app.chat.completions.create(model="chat", messages=_chat_naming(made.id))
            raise AssertionError("another key's file was given to a model")
        except openai.NotFoundError as refused:
            assert made.id in refused.message
    assert fake.requests == []  # no model was asked


async def _file_on_two(start_gateway: StartGateway, one: str, two: str) -> tuple[Gateway, str]:
    """A gateway with model left on upstream one, right on two, and groups l, r and both
    (left first); and the id of a file uploaded through it to upstream two."""
    models = [{"name": "left", "tier_score": 0.9, "specializations": [],
               "upstream_model": "m-left", "mode": "chat", "upstream": "one"},
              {"name": "right", "tier_score": 0.9, "specializations": [],
               "upstream_model": "m-right", "mode": "chat", "upstream": "two"}]
    routing = {"routing": {"strategy": "failover", "default_group": "both", "groups": {
        "l": ["left"], "r": ["right"], "both": ["left", "right"]}}}
    upstreams = {"one": {"url": one}, "two": {"url": two}}
    gateway = await start_gateway(models=models, routing=routing, gateway={"upstreams": upstreams})
    async with _sdk(gateway, **{"X-HX-Model-Group": "r"}) as on_two:
        made = await on_two.files.create(file=("a.pdf", PDF), purpose="user_data")
    return gateway, made.id


async def test_a_file_goes_to_its_upstream_s_model_and_from_no_other_upstream_s(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession,
):
    gateway, made = await _file_on_two(start_gateway, upstream[1], second_upstream[1])
    for group, status in (("both", 200), ("l", 400)):
        async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                               json={"model": group, "messages": _chat_naming(made)}) as resp:
            answer = await resp.json()
            assert resp.status == status, answer
            if status == 200:  # its upstream's model, though the group's first is left
                assert resp.headers["X-HX-Model"] == "right"
                assert resp.headers["X-HX-Route"] == "strategy=failover; chosen=right"
            else:
                assert "held by upstream 'two'" in answer["error"]["message"]
    assert upstream[0].requests == []


async def test_the_one_model_a_file_leaves_a_group_passes_on_its_own_error(
    start_gateway: StartGateway, upstream: tuple[FakeUpstream, str],
    second_upstream: tuple[FakeUpstream, str], client: aiohttp.ClientSession,
):
    # As for a group of one model: no failover to report, the upstream's words as they came.
    gateway, made = await _file_on_two(start_gateway, upstream[1], second_upstream[1])
    second_upstream[0].behave("m-right", status=500, error_message="the model broke")
    async with client.post(gateway.url + "/v1/chat/completions", headers=gateway.auth,
                           json={"model": "both", "messages": _chat_naming(made)}) as resp:
        assert resp.status == 500
        assert (await resp.json())["error"]["message"] == "the model broke"
