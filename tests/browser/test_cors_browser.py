"""A chat page on another origin streams an answer from the gateway in a real headless
chromium: the browser's own CORS checks (preflight, then the streamed response) pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.browser.test_status_page_browser import chromium
from tests.conftest import StartGateway
from tests.fixtures import Gateway

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><body><pre id="out">waiting</pre><script>
(async () => {
  const out = document.getElementById("out");
  try {
    const resp = await fetch(GATEWAY + "/v1/chat/completions", {
      method: "POST",
      headers: {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"},
      body: JSON.stringify({model: "chat", stream: true,
                            messages: [{role: "user", content: "hi"}]}),
    });
    const reader = resp.body.getReader(), decoder = new TextDecoder();
    let text = "", raw = "";
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      raw += decoder.decode(value, {stream: true});
    }
    for (const line of raw.split("\\n")) {
      if (line.startsWith("data: {")) {
        const delta = JSON.parse(line.slice(6)).choices[0]?.delta?.content;
        if (delta) text += delta;
      }
    }
    out.textContent = "answer:" + text + "|model:" + resp.headers.get("X-HX-Model");
  } catch (err) {
    out.textContent = "failed:" + err;
  }
})();
</script></body></html>"""


async def _page_shows(gateway: Gateway, tmp_path: Path) -> str:
    """What the page wrote, loaded from its own origin in chromium. On a loaded machine
    chromium may dump the page before its streamed fetch has ended (its virtual time runs
    out first): the page still says `waiting`, which is no answer of the gateway's, and
    it is loaded again, twice at most."""
    for _ in range(3):
        dom = await _page_once(gateway, tmp_path)
        if '<pre id="out">waiting</pre>' not in dom:
            break
    return dom


async def _page_once(gateway: Gateway, tmp_path: Path) -> str:
    html = PAGE.replace("GATEWAY", json.dumps(gateway.url)).replace("KEY", json.dumps(gateway.key))

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = TestServer(app, host="127.0.0.1")  # another port: another origin
    await server.start_server()
    try:
        dom = await chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom",
                             f"http://127.0.0.1:{server.port}/")
    finally:
        await server.close()
    return dom


async def test_a_page_on_another_origin_streams_a_chat_answer(gateway: Gateway, tmp_path: Path):
    dom = await _page_shows(gateway, tmp_path)
    assert "answer:Hello there from the fake upstream|model:alpha" in dom


async def test_with_cors_off_the_browser_keeps_the_answer_from_the_page(
    start_gateway: StartGateway, tmp_path: Path
):
    gateway = await start_gateway(gateway={"cors": {"allow_origins": []}})
    assert "failed:TypeError" in await _page_shows(gateway, tmp_path)
