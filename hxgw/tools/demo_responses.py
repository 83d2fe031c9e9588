"""The demo upstream's Responses API (`/v1/responses`), answered as api.openai.com does:
a `response` object, or its stream of named events (`response.created` ...
`response.completed`, each with its `sequence_number`, no `[DONE]`), with the same
deterministic answers. Responses are kept (the last thousand), with their input items,
so that a follow-up (`previous_response_id`), a read (or its events again, `stream=true`
after `starting_after`), a delete, a cancel, the input items' pages and a compaction work
as they do upstream; `input_tokens` counts a request's words.
A background response is done by the time it is answered: a quick upstream."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web

from hxgw import jsonio
from hxgw.tools.demo_answers import CONFIG, answer_words, json_body

KEPT = web.AppKey("responses", OrderedDict[str, dict[str, Any]])
INPUTS = web.AppKey("response_inputs", dict[str, list[dict[str, Any]]])
"""Each kept response's input items, as `GET .../input_items` and a compaction read them."""
KEEP = 1000


async def create(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    kept = request.app[KEPT]
    if unknown := _unknown_previous(body, kept):
        return unknown
    previous = body.get("previous_response_id")
    words, cut = answer_words(body, _prompt(body.get("input")), "max_output_tokens")
    # Cut at max_output_tokens, a response is `incomplete` and says why, as OpenAI's is.
    end = "incomplete" if cut else "completed"
    details = {"reason": "max_output_tokens"} if cut else None
    response: dict[str, Any] = {
        "id": "resp_" + secrets.token_hex(24),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "model": str(body.get("model") or "demo"),
        "output": [],
        "previous_response_id": previous,
        "background": body.get("background") is True,
        "usage": None,
        "metadata": {},
    }
    kept[response["id"]] = response
    inputs = request.app[INPUTS]
    inputs[response["id"]] = _items(body.get("input"))
    while len(kept) > KEEP:
        inputs.pop(kept.popitem(last=False)[0], None)
    text = " ".join(words)
    done = {
        "id": "msg_" + secrets.token_hex(24),
        "type": "message",
        "role": "assistant",
        "status": end,
        "content": [_part(text)],
    }
    usage = {"input_tokens": len(_prompt(body.get("input")).split()), "output_tokens": len(words)}
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    final = {**response, "status": end, "incomplete_details": details, "output": [done]}
    final["usage"] = usage
    if body.get("stream") is not True:
        response.update(final)
        return _json(response)
    return await _streamed(request, final, request.app[CONFIG].chunk_delay, response.update)


async def retrieve(request: web.Request) -> web.StreamResponse:
    """A kept response, or with `stream=true` its events again, those after the
    `starting_after` sequence number only, as a stream picked up again reads them."""
    found = request.app[KEPT].get(request.match_info["id"])
    if found is None:
        return _missing(request)
    if request.query.get("stream") != "true":
        return _json(found)
    try:
        after = int(request.query.get("starting_after", "-1"))
    except ValueError:
        return _error(400, "Invalid 'starting_after'.", "starting_after")
    return await _streamed(request, found, 0.0, None, after)


async def _streamed(
    request: web.Request,
    final: dict[str, Any],
    delay: float,
    settle: Callable[[dict[str, Any]], None] | None,
    after: int = -1,
) -> web.StreamResponse:
    """The events of the response that ends as `final`, a word a `delay`; `settle` is
    told the final response before its last event, the kept one's update."""
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await stream.prepare(request)
    sequence = iter(range(1 << 30))

    async def event(kind: str, **data: Any) -> None:
        number = next(sequence)
        if number > after:
            payload = {"type": kind, "sequence_number": number, **data}
            await stream.write(
                b"event: " + kind.encode() + b"\ndata: " + jsonio.dumps(payload) + b"\n\n"
            )

    started = {**final, "status": "in_progress", "incomplete_details": None, "output": []}
    started["usage"] = None
    await event("response.created", response=started)
    await event("response.in_progress", response=started)
    if not final["output"]:  # still being written, or its writer left: that is all there is
        await stream.write_eof()
        return stream
    item = final["output"][0]
    text = item["content"][0]["text"]
    message = {**item, "status": "in_progress", "content": []}
    at = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    await event("response.output_item.added", output_index=0, item=message)
    await event("response.content_part.added", part=_part(""), **at)
    for i, word in enumerate(text.split(" ") if text else []):
        await event("response.output_text.delta", delta=word if i == 0 else " " + word, **at)
        await asyncio.sleep(delay)
    await event("response.output_text.done", text=text, **at)
    await event("response.content_part.done", part=_part(text), **at)
    await event("response.output_item.done", output_index=0, item=item)
    if settle is not None:
        settle(final)
    await event(f"response.{final['status']}", response=final)
    await stream.write_eof()
    return stream


async def delete(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if request.app[KEPT].pop(ident, None) is None:
        return _missing(request)
    request.app[INPUTS].pop(ident, None)
    return _json({"id": ident, "object": "response", "deleted": True})


async def cancel(request: web.Request) -> web.Response:
    """Only a background response may be cancelled; one already done is answered as it
    is (cancelling is idempotent upstream)."""
    found = request.app[KEPT].get(request.match_info["id"])
    if found is None:
        return _missing(request)
    if found["background"] is not True:
        return _error(400, "Only responses created with background=true can be cancelled.", None)
    return _json(found)


async def input_items(request: web.Request) -> web.Response:
    """A page of the response's input items: newest first unless `order=asc`, `limit`
    1-100 (20), after the item `after`."""
    ident = request.match_info["id"]
    if ident not in request.app[KEPT]:
        return _missing(request)
    query = request.query
    order, after, limit = query.get("order", "desc"), query.get("after"), query.get("limit", "20")
    if order not in ("asc", "desc") or not (limit.isdigit() and 1 <= int(limit) <= 100):
        param = "limit" if order in ("asc", "desc") else "order"
        return _error(400, f"Invalid '{param}'.", param)
    items = request.app[INPUTS].get(ident, [])
    items = items if order == "asc" else items[::-1]
    ids = [item["id"] for item in items]
    start = ids.index(after) + 1 if after in ids else 0
    page = items[start : start + int(limit)]
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + int(limit) < len(items),
        }
    )


async def input_tokens(request: web.Request) -> web.Response:
    body = await json_body(request)
    if unknown := _unknown_previous(body, request.app[KEPT]):
        return unknown
    counted = len(_prompt(body.get("input")).split())
    return _json({"object": "response.input_tokens", "input_tokens": counted})


async def compact(request: web.Request) -> web.Response:
    """A `response.compaction`: the user's messages of the conversation (the responses
    before it, then its input), then one compaction item standing for the rest."""
    body = await json_body(request)
    kept, inputs = request.app[KEPT], request.app[INPUTS]
    if unknown := _unknown_previous(body, kept):
        return unknown
    previous = body.get("previous_response_id")
    items: list[dict[str, Any]] = []
    while previous is not None and previous in kept:
        items = inputs.get(previous, []) + items
        previous = kept[previous]["previous_response_id"]
    users = [item for item in [*items, *_items(body.get("input"))] if item["role"] == "user"]
    compaction = {
        "id": "cmp_" + secrets.token_hex(24),
        "type": "compaction",
        "encrypted_content": secrets.token_urlsafe(32),
    }
    read = sum(len(str(p.get("text", "")).split()) for item in users for p in item["content"])
    usage = {"input_tokens": read, "output_tokens": 1, "total_tokens": read + 1}
    return _json(
        {
            "id": "resp_" + secrets.token_hex(24),
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": [*users, compaction],
            "usage": usage,
        }
    )


def _prompt(given: Any) -> str:
    """The last user text of the input: a string, or a list of messages."""
    if isinstance(given, str):
        return given
    for message in reversed(given if isinstance(given, list) else []):
        if isinstance(message, dict) and message.get("role", "user") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _unknown_previous(
    body: dict[str, Any], kept: OrderedDict[str, dict[str, Any]]
) -> web.Response | None:
    """The 404 for a `previous_response_id` that names no kept response (a list or an
    object names none, and would not hash); None when there is none or it is kept."""
    previous = body.get("previous_response_id")
    if previous is None or (isinstance(previous, str) and previous in kept):
        return None
    return _error(404, f"Previous response with id '{previous}' not found.", "previous_response_id")


def _items(given: Any) -> list[dict[str, Any]]:
    """A request's `input` as the input items the API keeps: a string is one user message."""
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
    items = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        items.append(
            {
                "id": "msg_" + secrets.token_hex(24),
                "type": "message",
                "role": str(message.get("role", "user")),
                "status": "completed",
                "content": [p for p in parts if isinstance(p, dict)]
                if isinstance(parts, list)
                else [],
            }
        )
    return items


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _json(document: dict[str, Any]) -> web.Response:
    return web.json_response(document, dumps=lambda v: jsonio.dumps(v).decode())


def _missing(request: web.Request) -> web.Response:
    return _error(404, f"Response with id '{request.match_info['id']}' not found.", None)


def _error(status: int, message: str, param: str | None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return web.json_response({"error": error}, status=status)
