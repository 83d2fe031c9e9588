"""The status page in a real headless browser (Debian's chromium): it renders, and shows the
models and groups that /status.json reports.

By default the page comes from a real `hxgw serve` started by the test against the fake
upstream. To check another running gateway instead:

    HXGW_STATUS_URL=http://127.0.0.1:4010 HXGW_STATUS_KEY=... pytest -m browser tests/browser

A browser cannot send a bearer header when it navigates, and chromium takes no Basic-auth
credentials on its command line, so chromium loads the page through a loopback helper that
adds the Basic-auth header and passes the gateway's answer through byte for byte, with its
Content-Type and Content-Security-Policy: the DOM chromium renders is the page's own.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hxgw.server.charts import MAX_SERIES
from tests.conftest import StartGateway
from tests.unit.server.test_status_page import Page
from tests.unit.server.test_usage_section import Charts

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--window-size=1280,1000")
PASSED_HEADERS = ("Content-Type", "Content-Security-Policy", "Cache-Control")


@dataclass(frozen=True)
class StatusSource:
    """Where the status page is, and the Basic-auth credentials it takes."""

    url: str
    user: str
    password: str = field(repr=False)


@dataclass
class Helper:
    """The loopback helper chromium loads pages through; it remembers what was asked."""

    url: str
    paths: list[str] = field(default_factory=list)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
async def status_source(start_gateway: StartGateway) -> AsyncIterator[StatusSource]:
    """The gateway at HXGW_STATUS_URL when set; else a real `hxgw serve` started here, with
    the test config's models and groups, and a few requests served (usage for the charts)."""
    if url := os.environ.get("HXGW_STATUS_URL"):
        password = os.environ.get("HXGW_STATUS_KEY") or os.environ.get("MASTER_KEY", "")
        yield StatusSource(url.rstrip("/"), os.environ.get("HXGW_STATUS_USER", "hxgw"), password)
        return
    gateway = await start_gateway()
    async with aiohttp.ClientSession() as session:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        for _ in range(3):
            async with session.post(gateway.url + "/v1/chat/completions", json=body,
                                    headers=gateway.auth) as resp:
                assert resp.status == 200
    yield StatusSource(gateway.url, "operator", gateway.key)


@pytest.fixture
async def helper(status_source: StatusSource) -> AsyncIterator[Helper]:
    """GET /PATH here is GET /PATH at the source with Basic auth, the answer passed through."""
    auth = {"Authorization": basic_auth(status_source.user, status_source.password)}
    session = aiohttp.ClientSession(headers=auth)
    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        seen.append(request.path)
        async with session.get(status_source.url + request.path_qs) as resp:
            body = await resp.read()
            headers = {h: resp.headers[h] for h in PASSED_HEADERS if h in resp.headers}
            return web.Response(status=resp.status, body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Helper(f"http://127.0.0.1:{server.port}", seen)
    await server.close()
    await session.close()


async def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless chromium with a fresh profile; return what it printed on stdout."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (Debian: apt-get install -y chromium)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    process = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode()


async def reported_status(helper: Helper) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(helper.url + "/status.json") as resp:
        assert resp.status == 200
        status: dict[str, Any] = await resp.json()
        return status


async def test_the_status_page_renders_every_model_and_group_in_chromium(
    helper: Helper, tmp_path: Path
):
    status = await reported_status(helper)
    page = Page(await chromium(tmp_path, "--dump-dom", helper.url + "/status"))
    assert {m["name"] for m in status["models"]} <= set(page.rows("model"))
    assert {g["name"] for g in status["groups"]} <= set(page.rows("group"))
    assert status["models"] and status["groups"]
    assert "hxgw status" in page.all_text


async def test_each_model_shows_its_circuit_state_in_chromium(helper: Helper, tmp_path: Path):
    status = await reported_status(helper)
    rows = Page(await chromium(tmp_path, "--dump-dom", helper.url + "/status")).rows("model")
    for model in status["models"]:
        assert rows[model["name"]]["data-circuit"] == model["circuit"], model["name"]


async def test_the_page_loads_nothing_but_itself(helper: Helper, tmp_path: Path):
    dom = await chromium(tmp_path, "--dump-dom", helper.url + "/status")
    assert "hxgw status" in Page(dom).all_text
    assert set(helper.paths) <= {"/status", "/favicon.ico"}


async def test_a_screenshot_of_the_status_page_is_saved(helper: Helper, tmp_path: Path):
    shot = tmp_path / "status.png"
    await chromium(tmp_path, f"--screenshot={shot}", helper.url + "/status")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000, "the screenshot looks blank"
    print(f"status page screenshot: {shot}")


async def charted_usage(helper: Helper) -> dict[str, Any]:
    """The last hour's usage once the ledger has it: it is written in 1 s batches and read
    back at most every few seconds."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        usage = (await reported_status(helper))["usage"]
        if usage["ledger"] != "on" and "HXGW_STATUS_URL" in os.environ:
            pytest.skip(f"that gateway's usage ledger is {usage['ledger']}")
        assert usage["ledger"] == "on", usage
        hour: dict[str, Any] = usage["windows"]["hour"]
        if hour["keys"] and hour["models"]:
            return hour
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no usage reached /status.json: {usage}")
        await asyncio.sleep(0.5)


async def test_the_usage_charts_show_each_key_and_model_in_chromium(
    helper: Helper, tmp_path: Path
):
    hour = await charted_usage(helper)
    keys, models = set(hour["keys"]), set(hour["models"])
    if "HXGW_STATUS_URL" not in os.environ:
        assert keys == {"master"}  # the test gateway's key is MASTER_KEY
        assert sum(hour["keys"]["master"]["requests"]) >= 3
    assert models & {m["name"] for m in (await reported_status(helper))["models"]}
    charts = Charts(await chromium(tmp_path, "--dump-dom", helper.url + "/status")).charts
    assert len(charts) == 18
    shown = {
        "Tokens per key, last hour": keys, "Spend per key, last day": keys,
        "Requests per model, last hour": models, "Latency p99 per model, last hour": models,
        "Tokens per model, last day": models, "Errors per model, last hour": models,
    }
    for caption, names in shown.items():
        chart = charts[caption]
        assert chart["svg"] == 1 and chart["lines"] >= 1, caption
        # A legend keeps the MAX_SERIES busiest; the day's may name more than the hour's.
        if len(names) <= MAX_SERIES:
            assert set(chart["legend"]) >= names, caption
