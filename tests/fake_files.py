"""OpenAI's Files and Batches APIs as the fake upstream serves them, answering as
api.openai.com does: `file` and `batch` objects, lists newest first with `first_id`, `last_id`
and `has_more` (paged by `after` and `limit`; files also by `order` and `purpose`), a file's bytes as
`application/octet-stream`, and 404 `No such File object` for ids it does not hold.

Each upstream holds its own files and batches, as a real one does: an id sent to
the wrong upstream gets its 404, which is what shows a misrouted call in a test.
A batch completes when it is first read, with an output file of one line per
input line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fake_media import FORM_ERRORS, broken_form


def _output_line(line: bytes, index: int) -> dict[str, Any]:
    """One line of a batch's output file, as OpenAI writes it: the request's `custom_id`
    and its answer whole, its usage too."""
    try:
        custom_id = json.loads(line).get("custom_id", str(index))
    except (ValueError, AttributeError):
        custom_id = str(index)
    answer = {"id": f"chatcmpl-{secrets.token_hex(8)}", "object": "chat.completion",
              "created": int(time.time()), "model": "m-alpha",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "ok"}}],
              "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
    return {"id": f"batch_req_{secrets.token_hex(8)}", "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": secrets.token_hex(8), "body": answer},
            "error": None}


def _line_model(line: bytes) -> str | None:
    try:
        model = json.loads(line)["body"].get("model")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return model if isinstance(model, str) else None


def _no_such(kind: str, ident: str, param: str | None = None) -> web.Response:
    error = {"message": f"No such {kind} object: {ident}", "type": "invalid_request_error",
             "param": param or "id", "code": None}
    return web.json_response({"error": error}, status=404)


@dataclass
class Scripted:
    """A 200 answer as a test writes it: its Content-Type and body pieces (a callable,
    so a huge body is made as it is sent), with a Content-Length unless `chunked`."""

    content_type: str
    pieces: Callable[[], Iterable[bytes]]
    length: int | None = None


@dataclass
class FileStore:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    # For the fault suite: the list of files answered as scripted, and a file's content
    # that stops (and hangs) after this many bytes.
    list_answer: Scripted | None = None
    content_hangs_after: int | None = None
    # Pages of either list answered so far; after `cursors_expire_after` of them, any
    # `after` is answered as one the upstream no longer holds (its object expired).
    pages_served: int = 0
    cursors_expire_after: int | None = None
    page_delay: float = 0.0  # seconds each page of a list takes
    # After this many pages, a list fails as a proxy's would: a 500 quoting its URL.
    pages_fail_after: int | None = None

    def add_file(self, content: bytes, filename: str = "input.jsonl",
                 purpose: str = "batch") -> dict[str, Any]:
        ident = f"file-{secrets.token_hex(12)}"
        self.files[ident] = {"id": ident, "object": "file", "bytes": len(content),
                             "created_at": int(time.time()), "filename": filename,
                             "purpose": purpose, "status": "processed", "expires_at": None,
                             "status_details": None}
        self.contents[ident] = content
        return self.files[ident]

    async def upload(self, request: web.Request) -> web.Response:
        try:
            fields = await _read_form(request)
        except FORM_ERRORS as exc:
            return broken_form(exc)
        upload, purpose = fields.get("file"), fields.get("purpose")
        if not isinstance(upload, tuple) or not isinstance(purpose, str):
            error = {"message": "Missing required parameter: 'file' and 'purpose'.",
                     "type": "invalid_request_error", "param": "file", "code": None}
            return web.json_response({"error": error}, status=400)
        return web.json_response(self.add_file(upload[1], upload[0], purpose))

    def list_files(self, request: web.Request) -> web.Response:
        newest_first = request.query.get("order", "desc") != "asc"
        files = list(self.files.values())
        if "purpose" in request.query:  # as OpenAI's list: only the files of that purpose
            files = [held for held in files if held["purpose"] == request.query["purpose"]]
        return self._page(files, request, 10_000, newest_first)

    def retrieve_file(self, ident: str) -> web.Response:
        found = self.files.get(ident)
        return web.json_response(found) if found else _no_such("File", ident)

    def delete_file(self, ident: str) -> web.Response:
        if self.files.pop(ident, None) is None:
            return _no_such("File", ident)
        del self.contents[ident]
        return web.json_response({"id": ident, "object": "file", "deleted": True})

    async def content(self, request: web.Request, ident: str) -> web.StreamResponse:
        if ident not in self.contents:
            return _no_such("File", ident)
        data = self.contents[ident]
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(data)
        await response.prepare(request)
        for at in range(0, len(data), 4096):  # several chunks, as a large file comes
            if self.content_hangs_after is not None and at >= self.content_hangs_after:
                await asyncio.sleep(3600)
            await response.write(data[at : at + 4096])
        await response.write_eof()
        return response

    def create_batch(self, body: Any) -> web.Response:
        input_file = body.get("input_file_id") if isinstance(body, dict) else None
        if input_file not in self.files:
            return _no_such("File", str(input_file), "input_file_id")
        ident = f"batch_{secrets.token_hex(12)}"
        now = int(time.time())
        self.batches[ident] = {
            "id": ident, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
            "input_file_id": input_file, "completion_window": body.get("completion_window"),
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata")}
        return web.json_response(self.batches[ident])

    def retrieve_batch(self, ident: str) -> web.Response:
        batch = self.batches.get(ident)
        if batch is None:
            return _no_such("Batch", ident)
        if batch["status"] == "validating":
            lines = self.contents[batch["input_file_id"]].splitlines()
            output = b"".join(json.dumps(_output_line(line, i)).encode() + b"\n"
                              for i, line in enumerate(lines))
            batch["output_file_id"] = self.add_file(output, "output.jsonl", "batch_output")["id"]
            batch["status"], batch["completed_at"] = "completed", int(time.time())
            batch["request_counts"] = {"total": len(lines), "completed": len(lines), "failed": 0}
            # OpenAI's batch says the model that ran its lines (one for all of them).
            batch["model"] = _line_model(lines[0]) if lines else None
            batch["usage"] = {"input_tokens": 9 * len(lines),
                              "input_tokens_details": {"cached_tokens": 0},
                              "output_tokens": 2 * len(lines),
                              "output_tokens_details": {"reasoning_tokens": 0},
                              "total_tokens": 11 * len(lines)}
        return web.json_response(batch)

    def cancel_batch(self, ident: str) -> web.Response:
        batch = self.batches.get(ident)
        if batch is None:
            return _no_such("Batch", ident)
        batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return web.json_response(batch)

    def list_batches(self, request: web.Request) -> web.Response:
        return self._page(list(self.batches.values()), request, 20, newest_first=True)

    def _page(self, items: list[dict[str, Any]], request: web.Request, default_limit: int,
              newest_first: bool) -> web.Response:
        """`items` oldest first, as they were made."""
        self.pages_served += 1
        expired = self.cursors_expire_after is not None and (
            self.pages_served > self.cursors_expire_after)
        if self.pages_fail_after is not None and self.pages_served > self.pages_fail_after:
            error = {"message": f"Server error for url '{request.path_qs}'",
                     "type": "server_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=500)
        if newest_first:
            items = items[::-1]
        after = request.query.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            if after not in ids or expired:
                return _no_such("object", after, "after")
            items = items[ids.index(after) + 1 :]
        limit = int(request.query.get("limit", default_limit))
        page = items[:limit]
        return web.json_response({"object": "list", "data": page,
                                  "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None,
                                  "has_more": len(items) > limit})

    def routes(self) -> list[web.RouteDef]:
        async def upload(request: web.Request) -> web.Response:
            return await self.upload(request)

        async def on_file(request: web.Request) -> web.StreamResponse:
            ident = request.match_info["id"]
            if request.method == "DELETE":
                return self.delete_file(ident)
            return self.retrieve_file(ident)

        async def content(request: web.Request) -> web.StreamResponse:
            return await self.content(request, request.match_info["id"])

        async def batches(request: web.Request) -> web.Response:
            if request.method == "GET":
                await asyncio.sleep(self.page_delay)
                return self.list_batches(request)
            return self.create_batch(await request.json())

        async def on_batch(request: web.Request) -> web.Response:
            ident = request.match_info["id"]
            if request.path.endswith("/cancel"):
                return self.cancel_batch(ident)
            return self.retrieve_batch(ident)

        async def list_files(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(self.page_delay)
            if self.list_answer is not None:
                return await _scripted(request, self.list_answer)
            return self.list_files(request)

        return [web.post("/v1/files", upload), web.get("/v1/files", list_files),
                web.get("/v1/files/{id}", on_file), web.delete("/v1/files/{id}", on_file),
                web.get("/v1/files/{id}/content", content),
                web.post("/v1/batches", batches), web.get("/v1/batches", batches),
                web.get("/v1/batches/{id}", on_batch),
                web.post("/v1/batches/{id}/cancel", on_batch)]


async def _read_form(request: web.Request) -> dict[str, str | tuple[str, bytes]]:
    """The form's fields, a file as (filename, bytes), read part by part as it comes
    (aiohttp's `post()` leaves its temporary files open when the upload breaks off)."""
    fields: dict[str, str | tuple[str, bytes]] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader)
        data = bytearray()
        while chunk := await part.read_chunk(65536):
            data += chunk
        name = part.name or "?"
        fields[name] = (part.filename, bytes(data)) if part.filename else data.decode()
    return fields


async def _scripted(request: web.Request, answer: Scripted) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": answer.content_type})
    if answer.length is not None:
        response.content_length = answer.length
    await response.prepare(request)
    for piece in answer.pieces():
        await response.write(piece)
    await response.write_eof()
    return response
