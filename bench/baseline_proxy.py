"""The obvious aiohttp proxy, the yardstick for hxgw's throughput target.

    python bench/baseline_proxy.py UPSTREAM_URL PORT

What anyone would write in half an hour: one shared ClientSession, the body
read whole and sent on, the reply copied back with `iter_any()`, uvloop. No
auth, routing, validation or logging.
"""

import sys

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM, PORT = sys.argv[1].rstrip("/"), int(sys.argv[2])
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    connector = aiohttp.TCPConnector(limit=0)
    app[SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    yield
    await app[SESSION].close()


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    url = UPSTREAM + request.path_qs
    async with request.app[SESSION].request(request.method, url, data=body, headers=headers) as up:
        response = web.StreamResponse(
            status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")}
        )
        await response.prepare(request)
        async for chunk in up.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


app = web.Application(client_max_size=64 * 2**20)
app.cleanup_ctx.append(session_ctx)
app.router.add_route("*", "/{tail:.*}", proxy)
web.run_app(
    app,
    host="127.0.0.1",
    port=PORT,
    access_log=None,
    backlog=4096,
    print=None,
    loop=uvloop.new_event_loop(),
)
