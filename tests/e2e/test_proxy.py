"""The real `hxgw serve` process proxying plain (non-streaming) requests."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import yaml

from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import Gateway, new_key, wait_for

upstream, gateway = one_gateway.upstream, one_gateway.gateway
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def test_healthz_answers_ok_without_a_key(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.get(gateway.url + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_chat_reaches_the_upstream_and_names_the_serving_model(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
        body = await resp.json()
        assert resp.headers["X-HX-Model"] == "alpha"
        assert resp.headers["X-HX-Group"] == "chat"
    assert body["choices"][0]["message"]["content"] == "Hello there from the fake upstream"
    assert fake.seen_models() == ["m-alpha"]


async def test_routes_without_the_v1_prefix_are_served_too(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.post(gateway.url + "/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
    assert fake.requests[-1].path == "/v1/chat/completions"


async def test_a_request_id_is_generated_returned_and_forwarded(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        request_id = resp.headers["X-Request-ID"]
    assert len(request_id) >= 16
    assert fake.requests[-1].headers["X-Request-ID"] == request_id
    await wait_for(lambda: f"request_id={request_id}" in gateway.logs())


async def test_a_client_request_id_is_kept(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    headers = gateway.auth | {"X-Request-ID": "trace-abc.123"}
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=headers) as resp:
        assert resp.headers["X-Request-ID"] == "trace-abc.123"
    assert fake.requests[-1].headers["X-Request-ID"] == "trace-abc.123"


async def test_traceparent_passes_through_unchanged(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = gateway.auth | {"traceparent": trace}
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=headers):
        pass
    assert fake.requests[-1].headers["traceparent"] == trace


async def test_trace_headers_longer_than_an_upstream_reads_are_a_431_that_goes_nowhere(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Each line is within what the gateway reads; joined, they are past an upstream's.
    headers = [*gateway.auth.items(), *((("tracestate", f"k{n}=" + "v" * 3000)) for n in range(4))]
    before = len(fake.requests)
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=headers) as resp:
        assert resp.status == 431
        error = (await resp.json())["error"]
    assert error["code"] == "request_header_fields_too_large" and "vvvv" not in error["message"]
    assert len(fake.requests) == before


async def test_the_group_header_chooses_the_group(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    headers = gateway.auth | {"X-HX-Model-Group": "solo"}
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT | {"model": "chat"},
                           headers=headers) as resp:
        assert resp.headers["X-HX-Model"] == "gamma"
    assert fake.seen_models() == ["m-gamma"]


async def test_a_body_model_naming_a_group_chooses_that_group(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT | {"model": "solo"},
                           headers=gateway.auth) as resp:
        assert resp.headers["X-HX-Group"] == "solo"
    assert fake.seen_models() == ["m-gamma"]


async def test_a_body_model_naming_a_registered_model_pins_it(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT | {"model": "beta"},
                           headers=gateway.auth) as resp:
        assert resp.status == 200
        assert resp.headers["X-HX-Model"] == "beta"
        assert "X-HX-Group" not in resp.headers
    assert fake.seen_models() == ["m-beta"]


async def test_the_upstream_gets_the_upstream_key_and_never_the_client_key(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(upstream_key="sk-upstream-only-for-litellm")
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth):
        pass
    seen = fake.requests[-1].headers
    assert seen["Authorization"] == "Bearer sk-upstream-only-for-litellm"
    assert gateway.key not in str(seen)


async def test_without_an_upstream_key_the_master_key_goes_upstream(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=gateway.auth):
        pass
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {gateway.key}"


async def test_hop_by_hop_and_unknown_client_headers_are_not_forwarded(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    headers = gateway.auth | {"X-Secret-Internal": "1", "Proxy-Authorization": "Basic x",
                              "Cookie": "session=1", "TE": "trailers"}
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=headers):
        pass
    seen = {k.lower() for k in fake.requests[-1].headers}
    assert not seen & {"x-secret-internal", "proxy-authorization", "cookie", "te"}


async def test_embeddings_go_to_the_embedding_group_with_its_rewrite(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    async with client.post(gateway.url + "/v1/embeddings", json={"model": "emb", "input": "HX-OK"},
                           headers=gateway.auth) as resp:
        assert resp.status == 200
        assert len((await resp.json())["data"]) == 1
    assert fake.requests[-1].body == {"model": "m-embed", "prompt": "HX-OK"}


async def test_set_and_drop_rewrites_reach_the_upstream(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    models = [{"name": "alpha", "tier_score": 0.5, "specializations": [],
               "upstream_model": "m-alpha",
               "transforms": [{"set": {"temperature": 0, "seed": 7}}, {"drop": ["user"]}]}]
    routing = {"routing": {"default_group": "chat", "groups": {"chat": ["alpha"]}}}
    gateway = await start_gateway(models=models, routing=routing)
    body = CHAT | {"temperature": 1.5, "user": "someone"}
    async with client.post(gateway.url + "/v1/chat/completions", json=body, headers=gateway.auth):
        pass
    sent = fake.requests[-1].body
    assert sent["temperature"] == 0 and sent["seed"] == 7 and "user" not in sent


async def test_a_drop_of_stream_options_turns_the_gateways_usage_request_off(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # For an upstream that refuses the field, as docs/api.md says.
    models = [{"name": "alpha", "tier_score": 0.5, "specializations": [],
               "upstream_model": "m-alpha", "transforms": [{"drop": ["stream_options"]}]}]
    routing = {"routing": {"default_group": "chat", "groups": {"chat": ["alpha"]}}}
    gateway = await start_gateway(models=models, routing=routing)
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT | {"stream": True},
                           headers=gateway.auth) as resp:
        text = (await resp.read()).decode()
    assert "stream_options" not in fake.requests[-1].body
    assert text.rstrip().endswith("data: [DONE]")


async def test_models_lists_the_registrys_models_by_name_and_the_groups(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.models.append("m-nobody-names")  # no request could reach it through the gateway
    async with client.get(gateway.url + "/v1/models", headers=gateway.auth) as resp:
        assert resp.status == 200
        data = (await resp.json())["data"]
    assert {e["id"] for e in data} == {"alpha", "beta", "gamma", "embed", "chat", "solo", "emb"}
    alpha = next(e for e in data if e["id"] == "alpha")
    assert alpha["hx_upstream_model"] == "m-alpha" and alpha["object"] == "model"
    groups = {entry["id"] for entry in data if entry.get("hx_group")}
    assert groups == {"chat", "solo", "emb"}


async def test_a_group_in_the_models_list_is_dated_as_its_newest_model(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/v1/models", headers=gateway.auth) as resp:
        created = {entry["id"]: entry["created"] for entry in (await resp.json())["data"]}
    assert created["alpha"] < created["beta"]
    assert created["chat"] == created["beta"] and created["solo"] == created["gamma"]


async def test_a_group_whose_models_the_upstream_does_not_date_is_dated_at_the_config_s_load(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.models.remove("m-embed")
    before = int(time.time())
    gateway = await start_gateway()
    async with client.get(gateway.url + "/v1/models", headers=gateway.auth) as resp:
        created = {entry["id"]: entry["created"] for entry in (await resp.json())["data"]}
    assert before <= created["emb"] <= time.time()


async def test_models_is_a_502_that_says_why_when_no_upstream_lists_its_models(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.models_down = True
    async with client.get(gateway.url + "/v1/models", headers=gateway.auth) as resp:
        assert resp.status == 502
        error = (await resp.json())["error"]
    assert error["message"].startswith("no upstream listed its models (default: HTTP 503")


async def test_a_key_limited_to_groups_sees_only_those_and_their_models(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession
):
    secret = new_key("sk-app")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret,
                                              "groups": ["solo"]}]}))
    keys.chmod(0o600)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)}})
    async with client.get(gateway.url + "/v1/models",
                          headers={"Authorization": f"Bearer {secret}"}) as resp:
        ids = {e["id"] for e in (await resp.json())["data"]}
    assert ids == {"solo", "gamma"}  # before: every model and group, then 403 on use
    async with client.get(gateway.url + "/v1/models/alpha",
                          headers={"Authorization": f"Bearer {secret}"}) as resp:
        assert resp.status == 404


async def test_an_unknown_model_on_the_models_route_is_told_the_one_meant_and_the_list(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.get(gateway.url + "/v1/models/chta", headers=gateway.auth) as resp:
        assert resp.status == 404
        error = (await resp.json())["error"]
    assert error["message"] == ("The model `chta` does not exist (did you mean 'chat'?): "
                                "GET /v1/models lists the groups and models this key may use")
    assert (error["code"], error["param"]) == ("model_not_found", "model")


async def test_a_non_retryable_upstream_error_passes_through_as_is(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", status=400, error_message="No connected db.")
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"] == "No connected db."
    assert fake.seen_models() == ["m-alpha"]


async def test_a_body_cut_by_the_upstream_is_not_passed_off_as_complete(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", reset_after_chunks=1, content_length=False)
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 200
        try:
            await resp.read()
        except aiohttp.ClientPayloadError:
            return
    raise AssertionError("the truncated body was delivered as if complete")
