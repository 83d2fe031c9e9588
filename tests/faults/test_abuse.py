"""Abuse: reaching upstream admin routes, header injection, request smuggling, hop-by-hop
and credential headers, hostile JSON, odd methods, key guessing.

Complements tests/e2e/test_input_and_auth.py and tests/e2e/test_hardening.py: here every
trick runs against one gateway per family, counted into the fault table, and the upstream's
records prove what did (not) reach it.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.fake_upstream import FakeUpstream
from tests.faults.harness import (
    CHAT,
    CHAT_PATH,
    MODES,
    Outcome,
    call,
    check_leaks,
    is_openai_error,
    raw_exchange,
    statuses,
)
from tests.fixtures import Gateway, new_key, wait_for

UPSTREAM_PATHS = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"}
# Everything the upstream may see in a proxied request's headers.
ALLOWED_UPSTREAM_HEADERS = {"host", "content-type", "content-length", "accept", "accept-encoding",
                            "user-agent", "authorization", "x-request-id", "traceparent",
                            "tracestate", "via"}  # via: the gateway's own hop, never the client's


def _raw(method: str, target: str, gateway: Gateway, *, host: str = "x",
         body: bytes = b"{}", extra: str = "") -> bytes:
    return (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {gateway.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode() + body


def _first_status(answer: bytes) -> int | None:
    found = statuses(answer)
    return found[0] if found else None


def _refused_or_table_route(answer: bytes, fake: FakeUpstream, before: tuple[int, int]
                            ) -> Outcome:
    """A 4xx, or (for spellings that really are an allowlisted route) an answer whose
    upstream request went to an allowlisted path; never a 5xx, never an admin route.
    `before` is (requests, model lists) the upstream had seen before this request."""
    before, models_before = before
    status = _first_status(answer)
    new = fake.requests[before:] + fake.model_lists[models_before:]
    if status is not None and 400 <= status < 500 and not new:
        return Outcome("clean", status)
    if status == 200 and new and all(r.path in UPSTREAM_PATHS for r in new):
        return Outcome("ok", status)
    return Outcome("unexpected", status, detail=f"{answer[:120]!r} upstream saw "
                                              f"{[r.path for r in new]}")


ADMIN_TARGETS = [
    "/key/generate", "/key/info", "/user/new", "/model/new", "/config/update", "/spend/logs",
    "/global/spend", "/team/new", "/organization/new", "/v1/key/generate",
    "/v1/../key/generate", "/v1/./../key/generate", "/./key/generate", "//key/generate",
    "///key/generate", "/v1//key/generate", "//v1/../key/generate", "/key%2Fgenerate",
    "/%2Fkey/generate", "/v1%2F..%2Fkey%2Fgenerate", "/v1/chat/completions%2F..%2F..%2Fkey",
    "/%2e%2e/key/generate", "/v1/%2e%2e/key/generate", "/v1/%2E%2E/%2E%2E/key/generate",
    "/.%2e/key/generate", "/v1/chat/completions/..%2f..%2fkey/generate",
    "/%252e%252e/key/generate", "/v1/%252e%252e/key/generate", "/Key/Generate",
    "/KEY/GENERATE", "/V1/../KEY/GENERATE", "/key/generate/", "/key/generate?x=1",
    "/v1/chat/completions/../../key/generate", "/v1/chat/completions;/../../key/generate",
    "/v1/chat/completions%00/../../key/generate", "/v1\\..\\key\\generate",
    "/v1/chat/completions?/../../key/generate", "/v1/models/../../key/generate",
    "/%6B%65%79/generate", "/v1/chat%2Fcompletions", "*",
]


async def test_admin_route_path_tricks_never_reach_the_upstream(launch, fake: FakeUpstream, row):
    decoy_fake = FakeUpstream()
    decoy = TestServer(decoy_fake.make_app(), host="127.0.0.1")
    await decoy.start_server()
    try:
        gateway, base = await launch()
        line = row(f"admin route path tricks ({len(ADMIN_TARGETS) + 6} spellings)",
                   expect="any")
        up = f"127.0.0.1:{decoy.port}"
        requests = [_raw("POST", target, gateway) for target in ADMIN_TARGETS]
        requests += [
            # absolute-form targets: never a forward proxy to the host they name
            _raw("POST", f"http://{up}/key/generate", gateway, host=up),
            _raw("POST", "http://x/v1/../key/generate", gateway),
            _raw("POST", f"http://{up}/v1/chat/completions", gateway, host=up),
            _raw("GET", f"http://{up}/v1/models", gateway, host=up),
            # the Host header naming the upstream changes nothing either
            _raw("POST", "/key/generate", gateway, host=up),
            _raw("GET", "/key/list", gateway, host=up, body=b""),
        ]
        for request in requests:
            before = (len(fake.requests), len(fake.model_lists))
            answer = await raw_exchange(gateway.port, request, timeout=5)
            line.count(_refused_or_table_route(answer, fake, before))
        assert fake.admin_hits == []
        assert decoy_fake.requests == [] and decoy_fake.admin_hits == []
        assert decoy_fake.model_lists == []
        await check_leaks(base, line, concurrency=1)
        line.assert_clean()
    finally:
        await decoy.close()


HEADER_TRICKS: list[tuple[str, bytes]] = [
    ("encoded CRLF in X-Request-ID", b"X-Request-ID: abc%0d%0aSet-Cookie:%20x=1\r\n"),
    ("bare CR in a value", b"X-Request-ID: abc\rSet-Cookie: x=1\r\n"),
    ("bare LF between headers", b"X-Request-ID: abc\nX-Injected: 1\r\n"),
    ("NUL in a value", b"X-Request-ID: abc\x00def\r\n"),
    ("obs-fold continuation", b"X-Request-ID: abc\r\n Set-Cookie: x=1\r\n"),
    ("space before the colon", b"X-HX-Model-Group : solo\r\n"),
    ("CRLF-looking group name", b"X-HX-Model-Group: solo%0d%0aX-Injected:%201\r\n"),
    ("non-UTF-8 traceparent", b"traceparent: 00-\xff\xfe-01\r\n"),
    ("non-UTF-8 request id", b"X-Request-ID: \xc3\x28\xa0\xa1\r\n"),
    ("very long request id", b"X-Request-ID: " + b"a" * 8000 + b"\r\n"),
    ("header over max_field_size", b"X-Big: " + b"b" * 20000 + b"\r\n"),
]


async def test_header_injection_is_refused_or_neutralised(launch, fake: FakeUpstream, row):
    gateway, base = await launch()
    line = row(f"CRLF / header injection ({len(HEADER_TRICKS)} forms)", expect="any")
    for name, header in HEADER_TRICKS:
        request = (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}"
                   "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                   "Connection: close\r\n").encode() + header + b"\r\n{}"
        before = (len(fake.requests), len(fake.model_lists))
        answer = await raw_exchange(gateway.port, request, timeout=5)
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        injected = b"set-cookie" in head or b"x-injected" in head
        upstream = [h.lower() for r in fake.requests[before[0]:] for h, _ in r.header_list]
        outcome = _refused_or_table_route(answer, fake, before)
        if injected or "x-injected" in upstream or "set-cookie" in upstream:
            outcome = Outcome("unexpected", detail=f"{name}: a header got injected")
        elif outcome.kind == "unexpected":
            outcome.detail = f"{name}: {outcome.detail}"
        line.count(outcome)
    for seen in fake.requests:
        assert "\r" not in seen.headers.get("X-Request-ID", "")
        assert len(seen.headers.get("X-Request-ID", "")) <= 128
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


SMUGGLED = json.dumps({"messages": [{"role": "user", "content": "SMUGGLED"}]})


def _smuggling_requests(gateway: Gateway) -> list[tuple[str, bytes]]:
    inner = (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(SMUGGLED)}\r\n\r\n"
             f"{SMUGGLED}").encode()
    head = (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.key}\r\n"
            "Content-Type: application/json\r\n").encode()
    chunked_end = b"0\r\n\r\n"
    long_cl = str(len(chunked_end) + len(inner)).encode()
    return [
        ("CL then TE", head + b"Content-Length: " + long_cl
         + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_end + inner),
        ("TE then CL", head + b"Transfer-Encoding: chunked\r\nContent-Length: " + long_cl
         + b"\r\n\r\n" + chunked_end + inner),
        ("two different Content-Lengths", head + b"Content-Length: 2\r\nContent-Length: "
         + str(2 + len(inner)).encode() + b"\r\n\r\n{}" + inner),
        ("Content-Length list", head + b"Content-Length: 2, " + str(2 + len(inner)).encode()
         + b"\r\n\r\n{}" + inner),
        ("TE chunked, identity", head + b"Transfer-Encoding: chunked, identity\r\n"
         b"Content-Length: " + long_cl + b"\r\n\r\n" + chunked_end + inner),
        ("TE identity, chunked + CL", head + b"Transfer-Encoding: identity, chunked\r\n"
         b"Content-Length: " + long_cl + b"\r\n\r\n" + chunked_end + inner),
        ("TE xchunked", head + b"Transfer-Encoding: xchunked\r\nContent-Length: " + long_cl
         + b"\r\n\r\n" + chunked_end + inner),
        ("TE with obs-fold", head + b"Transfer-Encoding: identity\r\n chunked\r\n"
         b"Content-Length: " + long_cl + b"\r\n\r\n" + chunked_end + inner),
        ("space before the colon", head + b"Transfer-Encoding : chunked\r\nContent-Length: "
         + long_cl + b"\r\n\r\n" + chunked_end + inner),
        ("two TE headers", head + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"
         b"\r\n\r\n" + chunked_end + inner),
        ("TE on HTTP/1.0", head.replace(b"HTTP/1.1", b"HTTP/1.0")
         + b"Transfer-Encoding: chunked\r\nContent-Length: " + long_cl + b"\r\n\r\n"
         + chunked_end + inner),
        ("Content-Length +2", head + b"Content-Length: +2\r\n\r\n{}" + inner),
        ("Content-Length -1", head + b"Content-Length: -1\r\n\r\n{}" + inner),
        ("Content-Length 0x2", head + b"Content-Length: 0x2\r\n\r\n{}" + inner),
        ("Content-Length overflow", head + b"Content-Length: 18446744073709551618\r\n\r\n{}"
         + inner),
        ("chunk size overflow", head + b"Transfer-Encoding: chunked\r\n\r\n"
         b"10000000000000002\r\n{}\r\n0\r\n\r\n" + inner),
        ("chunk extension with bare LF", head + b"Transfer-Encoding: chunked\r\n\r\n"
         b"2;x\n{}\r\n0\r\n\r\n" + inner),
        ("NUL in Transfer-Encoding", head + b"Transfer-Encoding: chunked\x00\r\nContent-Length: "
         + long_cl + b"\r\n\r\n" + chunked_end + inner),
    ]


async def test_request_smuggling_attempts_are_refused(launch, fake: FakeUpstream, row):
    """Each ambiguous framing gets one 400 and a closed connection; the request hidden
    behind it never reaches the upstream."""
    gateway, base = await launch()
    variants = _smuggling_requests(gateway)
    line = row(f"request smuggling ({len(variants)} framings)", expect="clean")
    for name, request in variants:
        answer = await raw_exchange(gateway.port, request, timeout=5)
        found = statuses(answer)
        smuggled = any("SMUGGLED" in json.dumps(r.body, default=str) for r in fake.requests)
        if smuggled or len(found) != 1 or not 400 <= found[0] < 500:
            line.count(Outcome("unexpected", detail=f"{name}: statuses {found}, "
                                                    f"smuggled request served: {smuggled}"))
        else:
            line.count(Outcome("clean", found[0]))
        fake.requests.clear()
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


HOP_BY_HOP_REQUEST = {
    "Connection": "keep-alive, X-Foo, X-Bar", "X-Foo": "hop", "X-Bar": "hop",
    "Keep-Alive": "timeout=5, max=100", "Proxy-Connection": "keep-alive",
    "Proxy-Authorization": "Basic c2VjcmV0", "TE": "trailers", "Trailer": "X-Checksum",
    "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA", "Via": "1.1 evil",
    "Forwarded": "for=1.2.3.4;host=admin", "X-Forwarded-For": "1.2.3.4",
    "X-Forwarded-Host": "admin.internal", "X-Forwarded-Proto": "https",
    "X-Forwarded-Prefix": "/key", "X-Original-URL": "/key/generate",
    "X-Rewrite-URL": "/key/generate", "X-Real-IP": "1.2.3.4", "Cookie": "session=1",
    "X-Api-Key": "sk-client", "Api-Key": "sk-client", "X-Litellm-Api-Key": "sk-client",
    "Origin": "https://evil.example", "Referer": "https://evil.example/",
}
HOP_BY_HOP_RESPONSE = {
    "Connection": "X-Upstream-Hop", "X-Upstream-Hop": "1", "Keep-Alive": "timeout=99",
    "Proxy-Authenticate": "Basic realm=upstream", "Set-Cookie": "litellm=1",
    "Server": "litellm-secret/9.9", "X-Litellm-Key-Spend": "12.5",
    "X-Litellm-Version": "1.2.3", "Alt-Svc": "h3=\":443\"", "Trailer": "X-Sum",
    "Upgrade": "h2c", "WWW-Authenticate": "Basic realm=upstream",
    "x-ratelimit-remaining-requests": "99", "openai-version": "2020-10-01",
}


@pytest.mark.parametrize("mode", MODES)
async def test_hop_by_hop_and_credential_headers_never_cross_the_gateway(
    launch, fake: FakeUpstream, row, mode: str
):
    gateway, base = await launch(upstream_key="sk-upstream-only")
    fake.behave("m-alpha", headers=HOP_BY_HOP_RESPONSE)
    line = row("hop-by-hop / credential headers, both directions", mode)
    variants: list[list[tuple[str, str]]] = [
        list(HOP_BY_HOP_REQUEST.items()),
        [("authorization", f"Bearer {gateway.key}")],
    ]
    async with aiohttp.ClientSession() as session:
        # Two keys: a proxy in front may have read the other one, so neither is taken.
        twice = aiohttp.client.CIMultiDict(
            [("Authorization", f"Bearer {gateway.key}"), ("Authorization", "Bearer sk-evil")])
        before = len(fake.requests)
        async with session.post(gateway.url + CHAT_PATH, json=CHAT, headers=twice) as resp:
            await resp.read()
        refused = resp.status == 400 and len(fake.requests) == before
        line.count(Outcome("clean" if refused else "unexpected", resp.status))
        for extra in variants:
            headers = aiohttp.client.CIMultiDict(extra)
            if "Authorization" not in headers:
                headers["Authorization"] = f"Bearer {gateway.key}"
            before = len(fake.requests)
            body = {**CHAT, "stream": mode == "stream"}
            async with session.post(gateway.url + CHAT_PATH, json=body,
                                    headers=headers) as resp:
                text = (await resp.read()).decode()
                got = {k.lower(): v for k, v in resp.headers.items()}
            seen = fake.requests[before:]
            names = {h.lower() for r in seen for h, _ in r.header_list}
            auths = [v for r in seen for h, v in r.header_list if h.lower() == "authorization"]
            leaked_back = [h for h in HOP_BY_HOP_RESPONSE if h.lower() in got
                           and got[h.lower()] == HOP_BY_HOP_RESPONSE[h]
                           and not h.lower().startswith(("x-ratelimit-", "openai-"))]
            problems = []
            if names - ALLOWED_UPSTREAM_HEADERS:
                problems.append(f"forwarded {sorted(names - ALLOWED_UPSTREAM_HEADERS)}")
            if auths != ["Bearer sk-upstream-only"]:
                problems.append(f"upstream saw Authorization {auths}")
            vias = [v for r in seen for h, v in r.header_list if h.lower() == "via"]
            if any(not v.startswith("1.1 hxgw-") for v in vias):
                problems.append(f"upstream saw Via {vias}")
            if leaked_back:
                problems.append(f"passed back {leaked_back}")
            if "x-ratelimit-remaining-requests" not in got or "openai-version" not in got:
                problems.append("documented x-ratelimit-*/openai-* headers did not pass")
            ok = resp.status == 200 and not problems and (
                mode == "plain" or text.rstrip().endswith("data: [DONE]"))
            line.count(Outcome("ok" if ok else "unexpected", resp.status,
                               detail="; ".join(problems) or text[:100]))
    await check_leaks(base, line, concurrency=1)
    line.assert_clean("any")  # the two keys are refused, cleanly


async def test_x_hx_headers_neither_reach_nor_steer_the_upstream(launch, fake: FakeUpstream, row):
    gateway, base = await launch()
    line = row("X-HX-* headers (never forwarded; only X-HX-Model-Group steers)")
    steer = {"X-HX-Model": "gamma", "X-HX-Upstream": "http://127.0.0.1:1", "X-HX-Route":
             "chosen=gamma", "X-HX-Failovers": "9", "X-HX-Debug": "1", "X-HX-Group": "solo",
             "X-HX-Key": "master", "X-HX-Upstream-Key": "sk-x"}
    async with aiohttp.ClientSession() as session:
        for group, expected in ((None, "alpha"), ("solo", "gamma")):
            headers = dict(steer) | ({"X-HX-Model-Group": group} if group else {})
            for stream in (False, True):
                before = len(fake.requests)
                outcome = await call(session, gateway, stream=stream, headers=headers)
                names = {h.lower() for r in fake.requests[before:] for h, _ in r.header_list}
                served = outcome.headers.get("X-HX-Model")
                if outcome.kind == "ok" and (any(n.startswith("x-hx-") for n in names)
                                             or served != expected):
                    outcome = Outcome("unexpected", detail=f"served by {served}, upstream "
                                                           f"saw {sorted(names)}")
                line.count(outcome)
    assert fake.seen_models() == ["m-alpha", "m-alpha", "m-gamma", "m-gamma"]
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


def _nested(depth: int) -> bytes:
    return (b'{"messages": [{"role": "user", "content": "hi"}], "x": ' + b"[" * depth
            + b"]" * depth + b"}")


async def _post_raw(session: aiohttp.ClientSession, gateway: Gateway, data: bytes,
                    content_type: str = "application/json") -> Outcome:
    try:
        async with asyncio.timeout(20):
            async with session.post(gateway.url + CHAT_PATH, data=io.BytesIO(data),
                                    headers=gateway.auth | {"Content-Type": content_type}) as resp:
                raw = await resp.read()
    except TimeoutError:
        return Outcome("hang")
    try:
        payload = json.loads(raw)
    except ValueError:
        return Outcome("unexpected", resp.status, detail=f"not JSON: {raw[:100]!r}")
    if resp.status == 200 and "choices" in payload:
        return Outcome("ok", 200)
    if 400 <= resp.status < 500 and is_openai_error(payload):
        return Outcome("clean", resp.status, error=payload["error"])
    return Outcome("unexpected", resp.status, detail=f"HTTP {resp.status}: {raw[:160]!r}")


async def test_json_at_the_size_limit_and_hostile_shapes(launch, row):
    limit = 4_000_000
    fake = FakeUpstream(client_max_size=64 * 1024**2)  # this upstream takes big bodies
    server = TestServer(fake.make_app(), host="127.0.0.1")
    await server.start_server()
    try:
        await _at_the_limit(launch, row, fake, f"http://127.0.0.1:{server.port}", limit)
    finally:
        await server.close()


async def _at_the_limit(launch, row, fake: FakeUpstream, url: str, limit: int) -> None:
    gateway, base = await launch(upstream_url=url, limits={"max_body_bytes": limit})
    line = row("huge / wide / deep JSON (at the 4 MB limit, 1 byte over, "
               "200k keys, depth 100 and 5000)", expect="any")
    prefix = b'{"messages": [{"role": "user", "content": "'
    suffix = b'"}]}'
    exact = prefix + b"y" * (limit - len(prefix) - len(suffix)) + suffix
    wide = json.dumps({**CHAT, "extra": {f"k{i}": i for i in range(200_000)}}).encode()
    assert len(exact) == limit and len(wide) < limit
    cases = [(exact, 200), (exact[:-len(suffix)] + b'y"}]}', 413), (wide, 200),
             (_nested(100), 200), (_nested(5000), 400)]
    async with aiohttp.ClientSession() as session:
        for data, status in cases:
            before = len(fake.requests)
            outcome = await _post_raw(session, gateway, data)
            if outcome.status != status:
                outcome = Outcome("unexpected", outcome.status,
                                  detail=f"expected {status}, got {outcome.status}")
            elif status == 200:
                sent = fake.requests[before].body
                if data is exact and len(sent["messages"][0]["content"]) != len(exact) - len(
                        prefix) - len(suffix):
                    outcome = Outcome("unexpected", detail="the body was altered on the way")
            line.count(outcome)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_json_nested_300_deep_gets_a_4xx_or_goes_through(launch, fake: FakeUpstream, row):
    gateway, base = await launch()
    line = row("JSON nested 300 deep", expect="any")
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            line.count(await _post_raw(session, gateway, _nested(300)))
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


NON_UTF8 = [
    b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',  # latin-1
    '{"messages": [{"role": "user", "content": "hi"}]}'.encode("utf-16"),  # with BOM
    '{"messages": [{"role": "user", "content": "hi"}]}'.encode("utf-16-le"),
    b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "hi"}]}',  # UTF-8 BOM
    b'{"messages": [{"role": "user", "content": "\xc0\xaf"}]}',  # overlong "/"
    b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',  # encoded surrogate
    b'{"messages": [{"role": "user", "content": "\\ud800"}]}',  # escaped lone surrogate
    b'{"messages": [{"role": "user", "content": "a\x00b"}]}',  # raw NUL in a string
    b'{"messages": [{"role": "user", "content": "\\u0000"}]}',  # escaped NUL: valid
    b'{"messages": [{"role": "user", "content": "\xf4\x90\x80\x80"}]}',  # > U+10FFFF
    b"\x00\x00\x00{",
    b'{"model": "\xff"}',
]


async def test_non_utf8_bodies_get_a_4xx(launch, fake: FakeUpstream, row):
    gateway, base = await launch()
    line = row(f"non-UTF-8 / odd encodings ({len(NON_UTF8)} bodies)", expect="any")
    async with aiohttp.ClientSession() as session:
        for data in NON_UTF8:
            line.count(await _post_raw(session, gateway, data,
                                       content_type="application/json; charset=latin-1"))
    for seen in fake.requests:  # whatever went upstream is valid UTF-8 JSON
        assert isinstance(seen.body, dict), seen.body
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "PROPFIND", "FOO", "GET"]


async def test_unexpected_methods_are_refused(launch, upstream, fake: FakeUpstream, row):
    gateway, base = await launch()
    targets = [CHAT_PATH, "/v1/embeddings", "/v1/models", "/key/generate"]
    line = row(f"unexpected methods ({len(METHODS)} x {len(targets)} + CONNECT)", expect="any")
    for method in METHODS:
        for target in targets:
            if method == "GET" and target == "/v1/models":
                continue  # the one allowed here
            before = (len(fake.requests), len(fake.model_lists))
            answer = await raw_exchange(gateway.port, _raw(method, target, gateway), timeout=5)
            outcome = _refused_or_table_route(answer, fake, before)
            if method == "TRACE" and gateway.key.encode() in answer:
                outcome = Outcome("unexpected", detail="TRACE echoed the request")
            line.count(outcome)
    # CONNECT must not open a tunnel: bytes after it are not sent anywhere.
    target = upstream[1].removeprefix("http://")
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
                 "GET /key/generate HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 1.0)
            if not chunk:
                break
            answer += chunk
    except TimeoutError:
        pass
    writer.close()
    codes = statuses(answer)
    line.count(Outcome("clean" if codes and all(400 <= c < 500 for c in codes) else
                       "unexpected", detail=f"CONNECT answered {codes}"))
    assert fake.admin_hits == [] and fake.requests == []
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_repeated_bad_keys_from_one_address_are_locked_out(
    launch, fake: FakeUpstream, row
):
    """The default policy (20 bad keys within 60 s) with a 2 s lockout: the 21st attempt
    and every other new key from the same address get 429 + Retry-After, while the key that
    worked from there (the warm-up's) keeps working; another address is not affected;
    X-Forwarded-For does not move the lockout; it ends on time; it is logged once, with
    the address and never a key."""
    gateway, base = await launch(auth={"bad_key_lockout": 2})
    line = row("20 bad keys from one address -> 429 lockout", expect="any")
    guesses = [new_key("sk-guess") for _ in range(21)]
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession() as session, \
            aiohttp.ClientSession(connector=other) as elsewhere:
        async def status(s: aiohttp.ClientSession, key: str, **extra: str) -> tuple[int, Any]:
            async with s.post(gateway.url + CHAT_PATH, json=CHAT,
                              headers={"Authorization": f"Bearer {key}", **extra}) as resp:
                await resp.read()
                line.count(Outcome("clean" if resp.status in (401, 429) else "ok", resp.status))
                return resp.status, resp.headers.get("Retry-After")

        seen = [(await status(session, guess))[0] for guess in guesses[:20]]
        assert seen == [401] * 20
        locked_at = time.monotonic()
        code, retry_after = await status(session, guesses[20])
        assert code == 429 and retry_after is not None and 0 < int(retry_after) <= 2
        assert (await status(session, guesses[0]))[0] == 429
        assert (await status(session, guesses[0], **{"X-Forwarded-For": "10.9.8.7"}))[0] == 429
        # The key the warm-up used from this address is another client's: it keeps working.
        assert (await status(session, gateway.key))[0] == 200
        assert (await status(elsewhere, guesses[1]))[0] == 401  # another address is not locked
        await asyncio.sleep(max(0.0, locked_at + 2.2 - time.monotonic()))
        assert (await status(session, guesses[2]))[0] == 401
    await wait_for(lambda: "too many bad keys" in gateway.logs())
    logs = gateway.logs()
    assert logs.count("too many bad keys") == 1
    assert "address=127.0.0.1" in logs
    assert not any(guess in logs for guess in guesses) and gateway.key not in logs
    assert fake.requests and all(r.body.get("messages") for r in fake.requests)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()
