"""Bad input and bad keys get a clear 4xx in OpenAI error JSON; nothing else is disturbed."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import zlib

import aiohttp
import pytest
from multidict import CIMultiDict

from hxgw.upstream.affinity import bind
from tests import one_gateway
from tests.conftest import StartGateway
from tests.fake_upstream import FakeUpstream
from tests.fixtures import DEFAULT_MODELS, Gateway, new_key

upstream, gateway = one_gateway.upstream, one_gateway.gateway
CHAT_PATH = "/v1/chat/completions"


def _is_openai_error(body: dict) -> bool:
    error = body.get("error")
    return isinstance(error, dict) and {"message", "type", "param", "code"} <= error.keys()


async def test_a_missing_key_gets_401(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.post(gateway.url + CHAT_PATH, json={}) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert _is_openai_error(await resp.json())


async def test_a_wrong_key_gets_401_and_never_reaches_the_upstream(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    headers = {"Authorization": f"Bearer {new_key()}"}
    async with client.post(gateway.url + CHAT_PATH, json={}, headers=headers) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "invalid_api_key"
    assert fake.requests == []


@pytest.mark.parametrize("name", ["Authorization", "x-api-key"])
async def test_a_key_header_given_twice_gets_400_and_never_reaches_the_upstream(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream, name: str
):
    # A proxy in front may read the other one: the gateway picks neither.
    value = f"Bearer {gateway.key}" if name == "Authorization" else gateway.key
    headers = CIMultiDict([(name, value), (name, value)])
    async with client.post(gateway.url + CHAT_PATH, json={}, headers=headers) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["error"]["message"] == f"the request has 2 {name} headers: send one"
    assert fake.requests == []


@pytest.mark.parametrize(("path", "body", "param"), [
    (CHAT_PATH, {"messages": 5}, "messages"),
    (CHAT_PATH, {"messages": ["hi"]}, "messages[0]"),
    (CHAT_PATH, {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ("/v1/responses", {"input": 5}, "input"),
    ("/v1/completions", {"prompt": {"text": "hi"}}, "prompt"),
    ("/v1/embeddings", {"input": None}, "input"),
    (CHAT_PATH, {"messages": [], "tool_choice": 5}, "tool_choice"),
    (CHAT_PATH, {"messages": [], "response_format": "json"}, "response_format"),
    ("/v1/responses", {"input": "hi", "tool_choice": ["auto"]}, "tool_choice"),
])
async def test_a_main_field_of_the_wrong_type_gets_400_and_never_reaches_the_upstream(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream,
    path: str, body: dict[str, object], param: str,
):
    # LiteLLM answers these with a 500, which counted against every model it reached.
    async with client.post(gateway.url + path, json=body, headers=gateway.auth) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["param"] == param and error["message"].startswith(f"Invalid type for '{param}'")
    assert fake.requests == []


async def test_messages_of_the_wrong_type_get_anthropic_s_400(
    gateway: Gateway, client: aiohttp.ClientSession
):
    headers = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01"}
    async with client.post(gateway.url + "/v1/messages", headers=headers,
                           json={"model": "chat", "max_tokens": 5, "messages": "hi"}) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "Invalid type for 'messages'" in body["error"]["message"]


@pytest.mark.parametrize("path", [CHAT_PATH, "/v1/files"])
async def test_a_group_header_given_twice_gets_400_and_never_reaches_the_upstream(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream, path: str
):
    # Two groups asked for: the gateway picks neither, as for a key header given twice.
    headers = CIMultiDict([*gateway.auth.items(), ("X-HX-Model-Group", "chat"),
                           ("X-HX-Model-Group", "solo")])
    method = "POST" if path == CHAT_PATH else "GET"
    async with client.request(method, gateway.url + path, json={"messages": []},
                              headers=headers) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["error"]["message"] == "the request has 2 X-HX-Model-Group headers: send one"
    assert fake.requests == []


async def test_a_model_name_megabytes_long_gets_a_short_404_and_no_typo_hint(
    gateway: Gateway, client: aiohttp.ClientSession
):
    # Its typo hint had compared it with every name, a second per few MB of the one event
    # loop that every other client's request waits on; and the 404 had echoed it whole.
    body = json.dumps({"model": "chatalphabeta" * 2_000_000, "messages": []}).encode()
    async with client.post(gateway.url + CHAT_PATH, data=io.BytesIO(body),
                           headers=gateway.auth | {"Content-Type": "application/json"}) as resp:
        assert resp.status == 404
        message = (await resp.json())["error"]["message"]
    assert len(message) < 2100 and "did you mean" not in message


ONE_OBJECT = re.compile(r"/v1/(responses|files|batches)/[^/]+(/cancel)?")


ADMIN_PATHS = [
    "/key/generate", "/user/new", "/model/new", "/config/update", "/v1/key/generate",
    "/spend/logs", "/v1/../key/generate", "//key/generate", "/%6Bey/generate",
    "/v1/%2e%2e/key/generate", "/KEY/GENERATE", "/v1/chat/completions/../../key/generate",
    "/team/new", "/v1/messages/../../key/generate", "/v1/messages/%2e%2e/%2e%2e/user/new",
    "/v1/models/../../key/generate", "/v1/models/%2e%2e/%2e%2e/spend/logs",
    "/v1/responses/../../key/generate", "/v1/responses/%2e%2e%2f%2e%2e%2fkey/cancel",
    "/v1/files/%2e%2e/%2e%2e/user/new", "/v1/batches/..%2f..%2fkey%2fgenerate/cancel",
    # Ids the gateway would decode to an upstream id that climbs out of its route.
    "/v1/files/" + bind("upstream", "default", "../../key/generate"),
    "/v1/responses/" + bind("model", "alpha", "../../key/generate") + "/cancel",
    "/v1/batches/" + bind("upstream", "default", "x/../../../spend/logs"),
]


async def test_upstream_admin_routes_are_unreachable(gateway: Gateway, fake: FakeUpstream):
    # Every spelling, by both methods, against one gateway: each is refused by it.
    refused = {}
    for method in ("POST", "GET"):
        for path in ADMIN_PATHS:
            request = (f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {gateway.key}\r\nContent-Type: application/json"
                       "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            head, _ = await _answer_to(gateway, request.encode())
            refused[method, path] = int(head.split(b" ", 2)[1])
    assert {request: status for request, status in refused.items()
            if status not in (400, 404, 405)} == {}
    # A GET under /v1/models/ may ask the upstream for its model list; a made-up bound id
    # reaches its own route, as one opaque path segment; nothing else goes upstream.
    assert fake.admin_hits == []
    assert all(r.raw_path == "/v1/models" or ONE_OBJECT.fullmatch(r.raw_path)
               for r in fake.requests)


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, got an array"),
    (b'"text"', "must be a JSON object, got a string"),
    (b'{"model": 5, "messages": []}', "'model' must be a string, got a number"),
    (b'{"stream": "yes", "messages": []}', "'stream' must be true or false"),
    (b'{"stream": true, "stream_options": "yes", "messages": []}',
     "'stream_options' must be an object"),
    (b"", "request body is empty"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
])
async def test_malformed_bodies_get_400_with_a_message(
    gateway: Gateway, client: aiohttp.ClientSession, body: bytes, fragment: str
):
    headers = gateway.auth | {"Content-Type": "application/json"}
    async with client.post(gateway.url + CHAT_PATH, data=io.BytesIO(body), headers=headers) as resp:
        assert resp.status == 400
        payload = await resp.json()
    assert _is_openai_error(payload)
    assert fragment in payload["error"]["message"]


@pytest.mark.parametrize("body", [b'{"messages":[]}', b"\x1f\x8b\x08\x00not gzip at all"],
                         ids=["plain", "broken"])
async def test_a_body_that_does_not_decode_as_its_content_encoding_gets_400(
    gateway: Gateway, client: aiohttp.ClientSession, body: bytes
):
    headers = gateway.auth | {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with client.post(gateway.url + CHAT_PATH, data=io.BytesIO(body), headers=headers) as resp:
        assert resp.status == 400
        payload = await resp.json()
    assert _is_openai_error(payload)
    assert payload["error"]["message"] == "the request body cannot be read: it is not valid gzip"
    assert "Traceback" not in gateway.logs()


async def _answer_to(gateway: Gateway, request: bytes) -> tuple[bytes, bytes]:
    """The head and body the gateway answers to `request`, sent as raw bytes, before it
    closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def _cut_deflate(gateway: Gateway) -> tuple[bytes, bytes]:
    """A chat request whose deflate body lacks its last bytes (its final block)."""
    body = zlib.compress(json.dumps({"model": "chat", "messages": []}).encode())[:-4]
    head = (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
            f"Content-Type: application/json\r\nContent-Encoding: deflate\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head, body


async def test_a_deflate_body_cut_short_gets_400_not_a_415(gateway: Gateway):
    head, body = _cut_deflate(gateway)
    status, answer = await _answer_to(gateway, head + body)
    assert status.split(b" ")[1] == b"400"
    assert json.loads(answer)["error"]["message"] == (
        "the request body cannot be read: it is not valid deflate")


async def test_a_deflate_body_cut_short_after_its_head_gets_400_at_once_not_a_timeout(
    gateway: Gateway,
):
    head, body = _cut_deflate(gateway)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.2)  # the gateway waits for the body it has the head of
        writer.write(body)
        answer = await asyncio.wait_for(reader.read(), 5)  # the body timeout is 60 s
    finally:
        writer.close()
    status, _, payload = answer.partition(b"\r\n\r\n")
    assert status.split(b" ")[1] == b"400"
    assert json.loads(payload)["error"]["message"] == (
        "the request body cannot be read: it is not valid deflate")


@pytest.mark.parametrize(("head", "said"), [
    (b"GARBAGE\r\n\r\n", "invalid method encountered"),
    (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     "duplicate Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "invalid character in chunk size"),
])
async def test_a_request_that_cannot_be_parsed_gets_400_saying_why_in_a_few_words(
    gateway: Gateway, head: bytes, said: str
):
    status, body = await _answer_to(gateway, head)
    assert status.split(b" ")[1] == b"400"
    assert json.loads(body)["error"]["message"] == f"malformed HTTP request: {said}"


@pytest.mark.parametrize(("head", "status", "code"), [
    (b"GET /v1/models?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414",
     "uri_too_long"),
    (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431",
     "request_header_fields_too_large"),
])
async def test_a_request_line_or_header_too_long_gets_414_or_431_without_its_bytes(
    gateway: Gateway, head: bytes, status: bytes, code: str
):
    answer_head, body = await _answer_to(gateway, head)
    error = json.loads(body)["error"]
    assert (answer_head.split(b" ")[1], error["code"]) == (status, code)
    assert "aaaa" not in error["message"]


async def test_a_request_to_anthropic_s_api_whose_head_comes_in_pieces_gets_its_error_shape(
    gateway: Gateway,
):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        for piece in (b"POST /v1/mes", b"sages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n",
                      b"Content-Length: 6\r\n\r\n"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    payload = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("head", [
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    # The models path is Anthropic's too when the request says anthropic-version, past
    # the headers an SDK sends first.
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"X-Stainless-Arch: x64\r\n" * 20
    + b"anthropic-version: 2023-06-01\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
])
async def test_a_request_to_anthropic_s_api_that_cannot_be_parsed_gets_its_error_shape(
    gateway: Gateway, head: bytes
):
    status, body = await _answer_to(gateway, head)
    assert status.split(b" ")[1] == b"400"
    payload = json.loads(body)
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["message"].startswith("malformed HTTP request: ")
    assert f"request-id: {payload['request_id']}".encode() in status.lower()


async def test_a_gzipped_body_is_read_as_its_json(gateway: Gateway, client: aiohttp.ClientSession):
    body = gzip.compress(b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}')
    headers = gateway.auth | {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with client.post(gateway.url + CHAT_PATH, data=io.BytesIO(body), headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["object"] == "chat.completion"


@pytest.mark.parametrize("codings", [["identity", "gzip"], ["gzip", "identity"], ["gzip, gzip"],
                                     ["compress"], ["br"], ["zstd"]])
async def test_a_body_in_a_coding_the_gateway_does_not_decode_gets_415_naming_those_it_does(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream, codings: list[str]
):
    # Two Content-Encoding headers are read as the first by some and the last by others:
    # the body would be checked as one thing and sent upstream as another.
    headers = CIMultiDict(gateway.auth | {"Content-Type": "application/json"})
    for coding in codings:
        headers.add("Content-Encoding", coding)
    body = gzip.compress(b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}')
    async with client.post(gateway.url + CHAT_PATH, data=io.BytesIO(body), headers=headers) as resp:
        assert resp.status == 415
        assert resp.headers["Accept-Encoding"] == "gzip, deflate"
        error = (await resp.json())["error"]
    assert error["code"] == "unsupported_content_encoding"
    assert error["message"].startswith("the request body's Content-Encoding ")
    assert fake.requests == []


async def test_an_unknown_group_header_gets_404(gateway: Gateway, client: aiohttp.ClientSession):
    headers = gateway.auth | {"X-HX-Model-Group": "nope"}
    async with client.post(gateway.url + CHAT_PATH, json={}, headers=headers) as resp:
        assert resp.status == 404
        error = (await resp.json())["error"]
    assert error["code"] == "model_not_found" and "nope" in error["message"]


async def test_an_unknown_body_model_gets_404(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.post(gateway.url + CHAT_PATH, json={"model": "gpt-99"},
                           headers=gateway.auth) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["param"] == "model"


async def test_a_body_over_the_limit_gets_413(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(gateway={"limits": {"max_body_bytes": 1000}})
    body = {"messages": [{"role": "user", "content": "x" * 2000}]}
    async with client.post(gateway.url + CHAT_PATH, json=body, headers=gateway.auth) as resp:
        assert resp.status == 413
        assert _is_openai_error(await resp.json())
    assert fake.requests == []


async def test_a_chunked_body_over_the_limit_gets_413(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"limits": {"max_body_bytes": 1000}})

    async def chunks():
        for _ in range(10):
            yield b"x" * 500

    async with client.post(gateway.url + CHAT_PATH, data=chunks(), headers=gateway.auth) as resp:
        assert resp.status == 413


async def test_a_wrong_method_gets_405(gateway: Gateway, client: aiohttp.ClientSession):
    async with client.get(gateway.url + CHAT_PATH, headers=gateway.auth) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        assert _is_openai_error(await resp.json())


async def test_an_embedding_group_refuses_chat_requests(
    gateway: Gateway, client: aiohttp.ClientSession
):
    async with client.post(gateway.url + CHAT_PATH, json={"model": "emb"},
                           headers=gateway.auth) as resp:
        assert resp.status == 400
        assert "no model for this endpoint" in (await resp.json())["error"]["message"]


async def test_a_bad_request_does_not_disturb_a_stream_in_flight(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    fake.behave("m-alpha", content="a b c d e", chunk_delay=0.1)
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with client.post(gateway.url + CHAT_PATH, json=body, headers=gateway.auth) as stream:
        async with client.post(gateway.url + CHAT_PATH, data=b"{bad",
                               headers=gateway.auth) as bad:
            assert bad.status == 400
        text = (await stream.read()).decode()
    assert text.rstrip().endswith("data: [DONE]")


async def test_named_keys_from_a_keys_file_are_limited_to_their_groups(
    start_gateway: StartGateway, client: aiohttp.ClientSession, tmp_path
):
    alice = new_key("sk-alice")
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - name: alice\n    key: {alice}\n    groups: [solo]\n")
    keys.chmod(0o640)
    gateway = await start_gateway(gateway={"auth": {"keys_file": str(keys)}})
    headers = {"Authorization": f"Bearer {alice}"}
    async with client.post(gateway.url + CHAT_PATH, json={"model": "solo"},
                           headers=headers) as resp:
        assert resp.status == 200
    async with client.post(gateway.url + CHAT_PATH, json={"model": "chat"},
                           headers=headers) as resp:
        assert resp.status == 403
        error = (await resp.json())["error"]
    assert error["type"] == "permission_error"
    assert error["message"] == "key 'alice' may not use group 'chat' (its groups: solo)"
    async with client.post(gateway.url + CHAT_PATH, json={}, headers=headers) as resp:
        assert resp.status == 403  # the default group, which the client never named
        assert (await resp.json())["error"]["message"] == (
            "key 'alice' may not use group 'chat' (its groups: solo; no model named,"
            " so the default group: name one)")
    assert "key=alice" in gateway.logs()
    assert alice not in gateway.logs()


async def test_failover_order_takes_a_group_limited_key_only_to_models_of_its_groups(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream, tmp_path
):
    alice = new_key("sk-alice")
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - name: alice\n    key: {alice}\n    groups: [solo]\n")
    keys.chmod(0o640)
    routing = {"routing": {"default_group": "chat", "failover_order": ["alpha", "gamma"],
                           "groups": {"chat": ["alpha", "beta"], "solo": ["gamma"],
                                      "spare": ["beta"]}}}
    gateway = await start_gateway(routing=routing, gateway={"auth": {"keys_file": str(keys)}})
    fake.behave("m-gamma", status=503)
    async with client.post(gateway.url + CHAT_PATH, json={"model": "solo"},
                           headers={"Authorization": f"Bearer {alice}"}) as resp:
        assert resp.status == 503  # gamma's own answer: alpha is not one of solo's
    assert fake.seen_models() == ["m-gamma"]
    async with client.post(gateway.url + CHAT_PATH, json={"model": "spare"},
                           headers=gateway.auth) as resp:  # an unlimited key's goes on
        assert resp.status == 200
    fake.behave("m-beta", status=503)
    async with client.post(gateway.url + CHAT_PATH, json={"model": "spare"},
                           headers=gateway.auth) as resp:
        assert (resp.status, resp.headers["X-HX-Model"]) == (200, "alpha")


@pytest.mark.parametrize("model", ["chat", "gamma"])  # rewritten; passed on as it came
async def test_a_body_nested_deeper_than_the_gateway_writes_is_a_400_whoever_it_goes_to(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream, model: str
):
    # A model the upstream knows by its own name gets the body as it came. So it met a
    # parser upstream that failed with a 500 (Python's json at about 1,000 levels),
    # held against the model.
    models = [*DEFAULT_MODELS[:2], {**DEFAULT_MODELS[2], "upstream_model": "gamma"},
              *DEFAULT_MODELS[3:]]
    gateway = await start_gateway(models=models)
    nested = "[" * 300 + "]" * 300
    body = f'{{"model": "{model}", "messages": [], "metadata": {nested}}}'
    async with client.post(gateway.url + CHAT_PATH, data=body,
                           headers={**gateway.auth, "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert "nested too deeply" in (await resp.json())["error"]["message"]
    assert fake.requests == []


async def test_a_body_deeper_than_python_recurses_that_holds_the_id_mark_is_a_400(
    gateway: Gateway, client: aiohttp.ClientSession
):
    # The walk for the gateway's file ids (which any base64 may seem to hold) had met
    # Python's recursion limit: a 500.
    deep = "[" * 1000 + '"hx1"' + "]" * 1000
    body = '{"model": "chat", "messages": [], "metadata_x": ' + deep + "}"
    async with client.post(gateway.url + CHAT_PATH, data=body,
                           headers={**gateway.auth, "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert "nested too deeply" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(("path", "field", "value"), [
    (CHAT_PATH, "fallbacks", ["m-secret"]),
    (CHAT_PATH, "user_config", {"model_list": []}),
    ("/v1/messages", "context_window_fallbacks", ["m-secret"]),
    ("/v1/responses", "api_base", "http://elsewhere.example"),
])
async def test_a_field_that_would_steer_litellm_to_other_models_is_refused(
    gateway: Gateway, client: aiohttp.ClientSession, fake: FakeUpstream,
    path: str, field: str, value: object,
):
    # LiteLLM would fail over to a model the client names there, whatever its key may use.
    body = {"model": "chat", "max_tokens": 5, "input": "hi",
            "messages": [{"role": "user", "content": "hi"}], field: value}
    async with client.post(gateway.url + path, json=body, headers=gateway.auth) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert f"'{field}' steers LiteLLM's routing" in error["message"]
    assert fake.requests == []


async def test_an_upstream_s_400_that_quotes_the_gateway_s_key_reaches_the_client_masked(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    # Relayed as it came, a lone model's 400 had carried the upstream key whole.
    gateway = await start_gateway(upstream_key="sk-upstream-secret-value-1234")
    fake.behave("m-gamma", status=400,
                error_message="Invalid model. Received API Key = sk-upstream-secret-value-1234")
    async with client.post(gateway.url + CHAT_PATH, headers=gateway.auth,
                           json={"model": "solo", "messages": []}) as resp:
        assert resp.status == 400
        message = (await resp.json())["error"]["message"]
    assert message.endswith("Received API Key = ...1234")


async def test_keys_never_appear_in_the_logs(
    start_gateway: StartGateway, client: aiohttp.ClientSession, fake: FakeUpstream
):
    gateway = await start_gateway(upstream_key="sk-upstream-secret-value",
                                  env={"LOG_LEVEL": "debug"})
    fake.behave("m-alpha", status=500)
    for headers in (gateway.auth, {"Authorization": "Bearer sk-wrong-guess-value"}):
        async with client.post(gateway.url + CHAT_PATH, json={}, headers=headers):
            pass
    gateway.stop()
    logs = gateway.logs()
    assert "POST /v1/chat/completions" in logs
    for secret in (gateway.key, "sk-upstream-secret-value", "sk-wrong-guess-value"):
        assert secret not in logs
