"""Key guessing is throttled, TLS serves and re-reads its certificate, slow clients are cut."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
from pathlib import Path

import aiohttp
import openai
import pytest
from multidict import CIMultiDict

from tests.conftest import StartGateway
from tests.fixtures import Gateway, new_key, wait_for

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def test_repeated_bad_keys_lock_the_address_out_with_429(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 5, "bad_key_lockout": 30}})
    bad = {"Authorization": f"Bearer {new_key()}"}
    statuses = []
    for _ in range(6):
        async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                               headers=bad) as resp:
            statuses.append(resp.status)
    assert statuses == [401] * 5 + [429]
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=gateway.auth) as resp:
        assert resp.status == 429  # a right guess must not be told apart while locked out
        wait = int(resp.headers["Retry-After"])
        assert 0 < wait <= 30
        message = (await resp.json())["error"]["message"]
        assert message == (f"too many invalid API keys from this address: every key is "
                           f"refused for {wait}s more, but those already used from here")
    await wait_for(lambda: "too many bad keys" in gateway.logs())
    assert "address=127.0.0.1" in gateway.logs()


async def test_an_sdk_on_a_locked_out_address_is_told_at_once_not_kept_waiting(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    # Its Retry-After of up to a minute had the SDKs sleep in the call: a mistyped key,
    # then the right one, hung a minute before either was told anything.
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 2, "bad_key_lockout": 30}})
    bad = {"Authorization": f"Bearer {new_key()}"}
    for _ in range(3):
        async with client.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=bad):
            pass
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key,
                                  max_retries=2) as sdk:
        with pytest.raises(openai.RateLimitError) as refused:
            await sdk.chat.completions.create(model="chat", messages=[{"role": "user",
                                                                       "content": "hi"}])
    assert refused.value.response.headers["x-should-retry"] == "false"
    await wait_for(lambda: gateway.logs().count("POST /v1/chat/completions status=429 ") == 2)
    await asyncio.sleep(0.2)
    assert gateway.logs().count("POST /v1/chat/completions status=429 ") == 2  # no retry


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


async def _peer_common_name(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem, text=True,
                         capture_output=True, check=True).stdout
    return out.strip().rsplit("=", 1)[-1].strip()


async def test_tls_serves_https_and_rereads_the_certificate_on_reload(
    start_gateway: StartGateway, tmp_path: Path
):
    cert, key = _self_signed(tmp_path, "first")
    gateway = await start_gateway(gateway={"tls": {"cert": str(cert), "key": str(key)}},
                                  wait=False)
    https = f"https://127.0.0.1:{gateway.port}"
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(https + "/healthz", ssl=context) as resp:
                    assert resp.status == 200
                    break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.1)
        async with session.post(https + "/v1/chat/completions", json=CHAT, ssl=context,
                                headers=gateway.auth) as resp:
            assert resp.status == 200
    assert await _peer_common_name(gateway.port) == "first"
    new_cert, new_key_file = _self_signed(tmp_path, "second")
    new_cert.replace(cert)
    new_key_file.replace(key)
    gateway.signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in gateway.logs())
    assert await _peer_common_name(gateway.port) == "second"


async def test_a_client_that_never_finishes_its_headers_is_cut_off(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"limits": {"client_idle_timeout": 1}})
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    async with client.get(gateway.url + "/healthz") as resp:
        assert resp.status == 200  # others are served meanwhile
    for _ in range(3):
        writer.write(b"X-Slow: 1\r\n")
        await asyncio.sleep(0.2)
    answer = await asyncio.wait_for(reader.read(), timeout=5)  # then closed by the gateway
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"]["code"] == "request_timeout"


async def test_a_client_that_sends_part_of_its_head_at_once_and_then_nothing_gets_408(
    start_gateway: StartGateway,
):
    # The bytes come with the connection, before aiohttp's handler waits for a request.
    gateway = await start_gateway(gateway={"limits": {"client_idle_timeout": 1}})
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_an_idle_connection_after_a_request_with_a_body_is_closed_without_an_answer(
    start_gateway: StartGateway,
):
    gateway = await start_gateway(gateway={"limits": {"client_idle_timeout": 1}})
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    body = json.dumps(CHAT).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 + gateway.key.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    answer = await asyncio.wait_for(reader.read(), timeout=5)  # closed when idle
    writer.close()
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200 ")


async def _post_status(client: aiohttp.ClientSession, gateway: Gateway,
                       headers: dict[str, str]) -> int:
    async with client.post(gateway.url + "/v1/chat/completions", json=CHAT,
                           headers=headers) as resp:
        return resp.status


async def test_a_key_that_worked_keeps_working_while_its_address_is_locked_out(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 3, "bad_key_lockout": 30}})
    assert await _post_status(client, gateway, gateway.auth) == 200
    bad = {"Authorization": f"Bearer {new_key()}"}
    assert [await _post_status(client, gateway, bad) for _ in range(4)] == [401, 401, 401, 429]
    assert await _post_status(client, gateway, gateway.auth) == 200


@pytest.mark.parametrize("path", ["/status.json", "/metrics"])
async def test_guessing_on_an_operator_route_counts_and_is_locked_out_too(
    start_gateway: StartGateway, client: aiohttp.ClientSession, path: str
):
    gateway = await start_gateway(gateway={"auth": {"max_bad_keys": 3, "bad_key_lockout": 30},
                                           "metrics": {"auth": True}})
    bad = {"Authorization": f"Bearer {new_key()}"}
    statuses = []
    for _ in range(4):
        async with client.get(gateway.url + path, headers=bad) as resp:
            statuses.append(resp.status)
    assert statuses == [401, 401, 401, 429]
    async with client.get(gateway.url + path, headers=gateway.auth) as resp:
        assert resp.status == 429  # a right guess is not told apart there either
    assert await _post_status(client, gateway, gateway.auth) == 429  # one guard for all


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/metrics"])
async def test_a_made_up_forwarded_line_before_the_proxys_own_does_not_dodge_the_lockout(
    start_gateway: StartGateway, client: aiohttp.ClientSession, path: str
):
    # HAProxy's `option forwardfor` adds a line of its own after the client's.
    gateway = await start_gateway(gateway={"auth": {
        "max_bad_keys": 3, "bad_key_lockout": 30, "trusted_proxies": ["127.0.0.1"]}})
    statuses = []
    for n in range(5):
        headers = CIMultiDict({"Authorization": f"Bearer {new_key()}"})
        headers.add("X-Forwarded-For", f"198.51.100.{n}")  # the client's own, made up
        headers.add("X-Forwarded-For", "203.0.113.9")  # what the proxy saw
        method = "GET" if path == "/metrics" else "POST"
        async with client.request(method, gateway.url + path, json=CHAT,
                                  headers=headers) as resp:
            statuses.append(resp.status)
    assert statuses == [401, 401, 401, 429, 429]


async def test_behind_a_trusted_proxy_the_forwarded_address_is_locked_out_not_the_proxy(
    start_gateway: StartGateway, client: aiohttp.ClientSession
):
    gateway = await start_gateway(gateway={"auth": {
        "max_bad_keys": 3, "bad_key_lockout": 30, "trusted_proxies": ["127.0.0.1"]}})
    guesser = {"Authorization": f"Bearer {new_key()}", "X-Forwarded-For": "203.0.113.7"}
    assert [await _post_status(client, gateway, guesser) for _ in range(4)] == [401, 401, 401, 429]
    neighbour = {**gateway.auth, "X-Forwarded-For": "203.0.113.8"}
    assert await _post_status(client, gateway, neighbour) == 200
    await wait_for(lambda: "address=203.0.113.7" in gateway.logs())
