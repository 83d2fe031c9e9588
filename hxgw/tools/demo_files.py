"""The demo upstream's Files and Batches APIs, answered as api.openai.com does: `file`
and `batch` objects, lists with `first_id`, `last_id` and `has_more` (paged by
`after` and `limit`), a file's bytes as `application/octet-stream`, 404 `No such
File object` for an id it does not hold.

A batch is answered at once, each line with the demo's chat, completion or embedding
answer, but reports `validating` when created and `completed` from its first read,
as a client polling a real one sees it. Lines that are not requests go to an error
file. The demo keeps its last thousand files and batches, in memory.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from hxgw import jsonio
from hxgw.tools.demo_answers import CONFIG, completion, embedding_list, json_body

KEEP = 1000
FILES = web.AppKey("files", OrderedDict[str, tuple[dict[str, Any], bytes]])
BATCHES = web.AppKey("batches", OrderedDict[str, dict[str, Any]])
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def add_to(app: web.Application) -> None:
    app[FILES], app[BATCHES] = OrderedDict(), OrderedDict()
    app.router.add_post("/v1/files", upload)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{id}", retrieve_file)
    app.router.add_delete("/v1/files/{id}", delete)
    app.router.add_get("/v1/files/{id}/content", content)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{id}", retrieve_batch)
    app.router.add_post("/v1/batches/{id}/cancel", cancel_batch)


async def upload(request: web.Request) -> web.Response:
    fields: dict[str, Any] = {}
    limit = request.app[CONFIG].max_body_bytes
    try:
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader) or not part.name:
                continue
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > limit:
                    return _error(413, f"file is over the {limit}-byte limit", "file")
            value = (part.filename, bytes(data)) if part.filename else data.decode()
            fields[part.name] = value
    except (ValueError, UnicodeDecodeError, HttpProcessingError) as exc:
        return _error(400, f"Could not parse multipart form: {exc}", None)
    given, purpose = fields.get("file"), fields.get("purpose")
    if not isinstance(given, tuple) or not isinstance(purpose, str):
        return _error(400, "Missing required parameter: 'file' and 'purpose'.", "file")
    return web.json_response(_keep_file(request.app, given[1], given[0], purpose))


async def list_files(request: web.Request) -> web.Response:
    return _page(request, [described for described, _ in request.app[FILES].values()])


async def retrieve_file(request: web.Request) -> web.Response:
    return _file(request)[1]


async def delete(request: web.Request) -> web.Response:
    ident, missing = _file(request)
    if missing.status == 404:
        return missing
    del request.app[FILES][ident]
    return web.json_response({"id": ident, "object": "file", "deleted": True})


async def content(request: web.Request) -> web.Response:
    ident, missing = _file(request)
    if missing.status == 404:
        return missing
    data = request.app[FILES][ident][1]
    return web.Response(body=data, content_type="application/octet-stream")


async def create_batch(request: web.Request) -> web.Response:
    body = await json_body(request)
    kept = request.app[FILES].get(str(body.get("input_file_id")))
    if kept is None:
        return _error(404, f"No such File object: {body.get('input_file_id')}", "input_file_id")
    if body.get("endpoint") not in ENDPOINTS:
        return _error(400, f"endpoint must be one of {', '.join(ENDPOINTS)}", "endpoint")
    now = int(time.time())
    done, failed = _run(kept[1], body["endpoint"], request.app[CONFIG].embedding_dim)
    batch = {
        "id": "batch_" + secrets.token_hex(12),
        "object": "batch",
        "endpoint": body["endpoint"],
        "errors": None,
        "input_file_id": kept[0]["id"],
        "completion_window": body.get("completion_window"),
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + 86400,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": body.get("metadata"),
    }
    answer = dict(batch)
    batch.update(status="completed", in_progress_at=now, finalizing_at=now, completed_at=now)
    batch["request_counts"] = {
        "total": len(done) + len(failed),
        "completed": len(done),
        "failed": len(failed),
    }
    for lines, key in ((done, "output_file_id"), (failed, "error_file_id")):
        if lines:
            name = "batch_output.jsonl" if key == "output_file_id" else "batch_errors.jsonl"
            batch[key] = _keep_file(request.app, b"".join(lines), name, "batch_output")["id"]
    _keep(request.app[BATCHES], batch["id"], batch)
    return web.json_response(answer)


async def list_batches(request: web.Request) -> web.Response:
    return _page(request, list(request.app[BATCHES].values()))


async def retrieve_batch(request: web.Request) -> web.Response:
    batch = request.app[BATCHES].get(request.match_info["id"])
    if batch is None:
        return _error(404, f"No such Batch object: {request.match_info['id']}", "id")
    return web.json_response(batch)


async def cancel_batch(request: web.Request) -> web.Response:
    batch = request.app[BATCHES].get(request.match_info["id"])
    if batch is None:
        return _error(404, f"No such Batch object: {request.match_info['id']}", "id")
    return _error(400, f"Cannot cancel a batch with status '{batch['status']}'.", None)


def _run(data: bytes, endpoint: str, dim: int) -> tuple[list[bytes], list[bytes]]:
    """Each request line's output line, and the error lines of those that are not
    requests to the batch's endpoint."""
    done, failed = [], []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        ident = "batch_req_" + secrets.token_hex(12)
        try:
            request = jsonio.loads(line)
            custom_id, url, body = request["custom_id"], request["url"], request["body"]
            if url != endpoint:
                raise ValueError(f"url {url!r} is not the batch's endpoint {endpoint}")
            if url == "/v1/embeddings":
                answer = embedding_list(body, dim)
            else:
                answer = completion(body, chat=url.endswith("chat/completions"))
        except (jsonio.DecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            error = {"code": "invalid_request", "message": f"line {number}: {exc}", "line": number}
            failed.append(jsonio.dumps({"id": ident, "error": error}) + b"\n")
            continue
        response = {"status_code": 200, "request_id": secrets.token_hex(16), "body": answer}
        output = {"id": ident, "custom_id": custom_id, "response": response, "error": None}
        done.append(jsonio.dumps(output) + b"\n")
    return done, failed


def _keep_file(app: web.Application, data: bytes, name: str | None, purpose: str) -> dict[str, Any]:
    ident = "file-" + secrets.token_hex(12)
    described: dict[str, Any] = {
        "id": ident,
        "object": "file",
        "bytes": len(data),
        "created_at": int(time.time()),
        "filename": name or "file",
        "purpose": purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }
    _keep(app[FILES], ident, (described, data))
    return described


def _keep(kept: OrderedDict[str, Any], ident: str, value: Any) -> None:
    kept[ident] = value
    while len(kept) > KEEP:
        kept.popitem(last=False)


def _file(request: web.Request) -> tuple[str, web.Response]:
    """The id asked for and its file object, or the 404 the API answers."""
    ident = request.match_info["id"]
    kept = request.app[FILES].get(ident)
    if kept is None:
        return ident, _error(404, f"No such File object: {ident}", "id")
    return ident, web.json_response(kept[0])


def _page(request: web.Request, objects: list[dict[str, Any]]) -> web.Response:
    """A list, newest first, paged by `after` and `limit` as the API pages it."""
    objects.reverse()
    after = request.query.get("after")
    if after is not None:
        ids = [o["id"] for o in objects]
        objects = objects[ids.index(after) + 1 :] if after in ids else []
    limit = request.query.get("limit", "")
    count = int(limit) if limit.isdigit() and int(limit) > 0 else 10000
    page = objects[:count]
    return web.json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(objects) > count,
        }
    )


def _error(status: int, message: str, param: str | None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return web.json_response({"error": error}, status=status)
