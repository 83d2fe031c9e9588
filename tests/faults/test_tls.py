"""TLS on the listener: HTTPS with the configured certificate, re-read on SIGHUP.

The certificates are self-signed and made here with the `openssl` command line (the
`cryptography` package is not a dependency), each with a serial number of its own so
that a test can tell which one the gateway presents.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartGateway
from tests.faults.harness import (
    CHAT,
    CHAT_PATH,
    FAST_TIMEOUTS,
    Baseline,
    Outcome,
    Probe,
    Row,
    check_leaks,
    sse_verdict,
)
from tests.fixtures import Gateway

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
    reason="needs the openssl command line")


def make_cert(directory: Path, name: str, serial: int) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
         "-set_serial", str(serial), "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


def serial_of(der: bytes) -> int:
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, text=True,
                         capture_output=True, check=True).stdout
    return int(out.strip().split("=", 1)[1], 16)


async def presented_serial(port: int) -> int:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    return serial_of(der)


class Https:
    """A gateway serving HTTPS, with a client context that trusts its certificate."""

    def __init__(self, gateway: Gateway, ca: Path) -> None:
        self.gateway = gateway
        self.url = f"https://127.0.0.1:{gateway.port}"
        self.context = ssl.create_default_context(cafile=str(ca))

    def trust(self, ca: Path) -> None:
        self.context.load_verify_locations(cafile=str(ca))

    async def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.gateway.process is not None
                if self.gateway.process.poll() is not None:
                    raise RuntimeError(f"hxgw exited:\n{self.gateway.logs()}")
                with contextlib.suppress(aiohttp.ClientError, ssl.SSLError):
                    async with session.get(self.url + "/healthz", ssl=self.context) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise TimeoutError(f"no HTTPS:\n{self.gateway.logs()}")

    async def chat(self, session: aiohttp.ClientSession, row: Row, stream: bool) -> Outcome:
        body = {**CHAT, "stream": stream}
        try:
            async with session.post(self.url + CHAT_PATH, json=body, ssl=self.context,
                                    headers=self.gateway.auth) as resp:
                text = (await resp.read()).decode()
        except (aiohttp.ClientError, ssl.SSLError) as exc:
            return row.count(Outcome("unexpected", detail=f"{type(exc).__name__}: {exc}"))
        if stream:
            kind, detail, _ = sse_verdict(text)
        else:
            kind, detail = ("ok", "") if resp.status == 200 and '"choices"' in text else (
                "unexpected", text[:100])
        return row.count(Outcome(kind, resp.status, text, detail))


async def _start(start_gateway: StartGateway, tmp_path: Path, **limits: float
                 ) -> tuple[Https, Baseline, Path, Path]:
    cert, key = make_cert(tmp_path, "gateway", 0x1001)
    gateway = await start_gateway(
        gateway={"tls": {"cert": str(cert), "key": str(key)}, "timeouts": FAST_TIMEOUTS,
                 "limits": {"upstream_connections": 16, **limits}}, wait=False)
    https = Https(gateway, cert)
    await https.wait_ready()
    async with aiohttp.ClientSession() as session:
        for stream in (False, True):
            await https.chat(session, Row("warm-up"), stream)
    assert gateway.process is not None
    probe = Probe(gateway.process.pid, gateway.port)
    await asyncio.sleep(0.2)
    return https, Baseline(probe, probe.snapshot(), 16), cert, key


async def _reload(gateway: Gateway, marker: str) -> None:
    seen = gateway.logs().count(marker)
    gateway.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while gateway.logs().count(marker) <= seen:
        assert time.monotonic() < deadline, f"no {marker!r} in the log"
        await asyncio.sleep(0.02)


async def test_https_serves_the_certificate_and_sighup_rereads_it(
    start_gateway: StartGateway, tmp_path: Path, row
):
    https, base, cert, key = await _start(start_gateway, tmp_path)
    line = row("TLS: HTTPS, then SIGHUP with a new certificate")
    assert await presented_serial(https.gateway.port) == 0x1001
    async with aiohttp.ClientSession() as before_reload:
        for i in range(10):
            await https.chat(before_reload, line, stream=bool(i % 2))
        (tmp_path / "next").mkdir()
        new_cert, new_key = make_cert(tmp_path / "next", "gateway", 0x2002)
        # Replace the files in place (as certbot's deploy hook would), then reload.
        os.replace(new_key, key)
        os.replace(new_cert, cert)
        await _reload(https.gateway, "config reloaded")
        https.trust(cert)
        assert await presented_serial(https.gateway.port) == 0x2002
        # A keep-alive connection made before the reload keeps working on its old session.
        for i in range(5):
            await https.chat(before_reload, line, stream=bool(i % 2))
    async with aiohttp.ClientSession() as after_reload:
        for i in range(10):
            await https.chat(after_reload, line, stream=bool(i % 2))
    line.notes.append("serial 0x1001 before the reload, 0x2002 after")
    await check_leaks(base, line, concurrency=2)
    line.assert_clean()


async def test_a_broken_certificate_on_reload_keeps_the_old_one(
    start_gateway: StartGateway, tmp_path: Path, row
):
    https, base, cert, _ = await _start(start_gateway, tmp_path)
    line = row("TLS: SIGHUP with a broken certificate keeps the old one")
    good = cert.read_bytes()
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    await _reload(https.gateway, "config reload rejected")
    cert.write_bytes(good)  # what the running gateway holds: the old certificate
    assert await presented_serial(https.gateway.port) == 0x1001
    async with aiohttp.ClientSession() as session:
        for i in range(6):
            await https.chat(session, line, stream=bool(i % 2))
    assert "cannot load the certificate" in https.gateway.logs()
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()


async def test_plaintext_and_garbage_on_the_tls_port_do_not_disturb_it(
    start_gateway: StartGateway, tmp_path: Path, row
):
    https, base, _, _ = await _start(start_gateway, tmp_path)
    line = row("TLS: plaintext HTTP and garbage on the HTTPS port", expect="any")
    probes = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello",
              os.urandom(512), b"\x16\x03\x03" + b"\xff" * 3000]
    for i in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", https.gateway.port)
        writer.write(probes[i % len(probes)])
        try:
            answer = await asyncio.wait_for(reader.read(), timeout=5)
            line.count(Outcome("clean", detail=repr(answer[:40])))
        except TimeoutError:
            line.count(Outcome("hang", detail="the TLS port kept a garbage connection open"))
        except (ConnectionError, OSError):
            line.count(Outcome("clean"))
        writer.close()
    async with aiohttp.ClientSession() as session:
        for i in range(4):
            await https.chat(session, line, stream=bool(i % 2))
    await check_leaks(base, line, concurrency=1)
    line.assert_clean(expect="any")


async def test_a_client_that_never_starts_the_handshake_is_cut(
    start_gateway: StartGateway, tmp_path: Path, row
):
    https, base, _, _ = await _start(start_gateway, tmp_path, client_idle_timeout=1)
    line = row("TLS: 10 clients that never send a ClientHello", expect="clean")
    silent = [await asyncio.open_connection("127.0.0.1", https.gateway.port) for _ in range(10)]
    started = time.monotonic()
    for reader, writer in silent:
        try:
            left = max(0.1, started + 1 + 3 - time.monotonic())
            await asyncio.wait_for(reader.read(), timeout=left)
            line.count(Outcome("clean"))
        except TimeoutError:
            line.count(Outcome("hang", detail="still connected"))
        except (ConnectionError, OSError):
            line.count(Outcome("clean"))
        writer.close()
    async with aiohttp.ClientSession() as session:
        await https.chat(session, Row("after"), stream=False)
    await check_leaks(base, line, concurrency=1)
    line.assert_clean()
