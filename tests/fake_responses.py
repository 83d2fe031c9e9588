"""OpenAI's Responses API as the fake upstream serves it, answering as api.openai.com
does: a `response` object, or a stream of named events (`response.created`,
`response.in_progress`, `response.output_item.added`, `response.content_part.added`,
`response.output_text.delta` a word each, `response.output_text.done`,
`response.content_part.done`, `response.output_item.done`, `response.completed`),
each with its `type` and a `sequence_number` from 0, and no `[DONE]`.

Responses are kept per upstream, as a real one keeps them (not those made with
`store: false`): a `previous_response_id`, `GET`, `DELETE`, `cancel` or `input_items` on
an id this upstream did not keep gets OpenAI's 404. That is what makes a misrouted
follow-up visible to a test. `input_items` pages as OpenAI's does: `order` (newest first
by default), `limit` (20 by default, 1 to 100) and `after` an item's id.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.fake_upstream import Behaviour

INPUT_TOKENS = 9


@dataclass
class Stored:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    words: list[str] = field(default_factory=list)
    """What a background response will say once it has run."""


RUNNING = ("queued", "in_progress")


@dataclass
class ResponseStore:
    """The responses one fake upstream made, by id."""

    made: dict[str, Stored] = field(default_factory=dict)

    def run_background(self) -> None:
        """Every queued background response runs to its end, as OpenAI's do meanwhile."""
        for stored in self.made.values():
            if stored.response["background"] and stored.response["status"] in RUNNING:
                _complete(stored.response, stored.words)

    def not_found(self, response_id: str, param: str | None = None) -> web.Response:
        what = "Previous response" if param else "Response"
        error = {"message": f"{what} with id '{response_id}' not found.",
                 "type": "invalid_request_error", "param": param,
                 "code": "previous_response_not_found" if param else None}
        return web.json_response({"error": error}, status=404)

    async def create(self, request: web.Request, body: dict[str, Any],
                     how: Behaviour) -> web.StreamResponse:
        if (refusal := input_refusal(body.get("input"))) is not None:
            return refusal
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.made:
            return self.not_found(previous, "previous_response_id")
        words = how.content.split(" ")
        turns = 1 + (self._turns(previous) if previous else 0)
        response = _response(str(body.get("model")), previous, body.get("background") is True)
        # OpenAI repeats the request's settings in every copy of the response it sends.
        response["tools"] = body.get("tools") or []
        response["instructions"] = body.get("instructions")
        response["user"] = body.get("user")
        response["safety_identifier"] = body.get("safety_identifier")
        given = body.get("metadata")
        response["metadata"] = {**(given if isinstance(given, dict) else {}), "turns": str(turns)}
        response["store"] = body.get("store") is not False
        if response["store"]:
            self.made[response["id"]] = Stored(response, _input_items(body.get("input")), words)
        if response["status"] == "queued" and not body.get("stream"):
            return web.json_response(response)  # streamed, it runs while the client reads
        if not body.get("stream"):
            _complete(response, words)
            if how.reset_after_chunks is not None:
                return await _cut_json(request, response)
            return web.json_response(response)
        return await _stream(request, response, words, how)

    def input_tokens(self, body: dict[str, Any]) -> web.Response:
        if (refusal := input_refusal(body.get("input"))) is not None:
            return refusal
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.made:
            return self.not_found(previous, "previous_response_id")
        counted = INPUT_TOKENS + len(json.dumps(body.get("input"))) // 100
        return web.json_response({"object": "response.input_tokens", "input_tokens": counted})

    def compact(self, body: dict[str, Any]) -> web.Response:
        """OpenAI's `response.compaction`: the user's messages (of the responses before it,
        then of its input), then one compaction item, and the usage of the pass."""
        if (refusal := input_refusal(body.get("input"))) is not None:
            return refusal
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.made:
            return self.not_found(previous, "previous_response_id")
        items: list[dict[str, Any]] = []
        while previous is not None:
            items = self.made[previous].input_items + items
            previous = self.made[previous].response["previous_response_id"]
        items += _input_items(body.get("input"))
        compaction = {"id": f"cmp_{secrets.token_hex(24)}", "type": "compaction",
                      "encrypted_content": secrets.token_urlsafe(32)}
        usage = {"input_tokens": INPUT_TOKENS * len(items), "output_tokens": 5,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": INPUT_TOKENS * len(items) + 5}
        return web.json_response({
            "id": f"resp_{secrets.token_hex(24)}", "object": "response.compaction",
            "created_at": int(time.time()),
            "output": [*(i for i in items if i["role"] == "user"), compaction], "usage": usage})

    def _turns(self, response_id: str) -> int:
        turns = 0
        while response_id in self.made:
            turns += 1
            response_id = self.made[response_id].response["previous_response_id"]
            if response_id is None:
                break
        return turns

    async def retrieve(self, request: web.Request, response_id: str,
                       how: Behaviour) -> web.StreamResponse:
        """The response as JSON; with `?stream=true` its events again, from the one after
        `starting_after` (a sequence number), as a stream the client lost is resumed."""
        stored = self.made.get(response_id)
        if stored is None:
            return self.not_found(response_id)
        if request.query.get("stream") != "true":
            return web.json_response(stored.response)
        made = stored.response
        item = made["output"][0] if made["output"] else _message([], done=False)
        words = item["content"][0]["text"].split(" ") if item["content"] else []
        again = {**made, "status": "in_progress", "output": [], "usage": None}
        after = int(request.query.get("starting_after", "-1"))
        return await _stream(request, again, words, how, after=after, item_id=item["id"])

    def delete(self, response_id: str) -> web.Response:
        if self.made.pop(response_id, None) is None:
            return self.not_found(response_id)
        return web.json_response({"id": response_id, "object": "response", "deleted": True})

    def cancel(self, response_id: str) -> web.Response:
        stored = self.made.get(response_id)
        if stored is None:
            return self.not_found(response_id)
        if stored.response["background"] is not True:
            error = {"message": "Only responses created with background=true can be cancelled.",
                     "type": "invalid_request_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=400)
        stored.response["status"] = "cancelled"
        return web.json_response(stored.response)

    def input_items(self, response_id: str, query: Mapping[str, str]) -> web.Response:
        stored = self.made.get(response_id)
        if stored is None:
            return self.not_found(response_id)
        order, after = query.get("order", "desc"), query.get("after")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if order not in ("asc", "desc") or not 1 <= limit <= 100:
            error = {"message": "Invalid 'limit' or 'order'.", "type": "invalid_request_error",
                     "param": "limit" if order in ("asc", "desc") else "order", "code": None}
            return web.json_response({"error": error}, status=400)
        items = stored.input_items if order == "asc" else stored.input_items[::-1]
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else 0
        data = items[start:start + limit]
        return web.json_response({"object": "list", "data": data,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None,
                                  "has_more": start + limit < len(items)})


def _response(model: str, previous: str | None, background: bool) -> dict[str, Any]:
    return {
        "id": f"resp_{secrets.token_hex(24)}", "object": "response",
        "created_at": int(time.time()), "status": "queued" if background else "in_progress",
        "background": background, "error": None, "incomplete_details": None,
        "instructions": None, "max_output_tokens": None, "model": model, "output": [],
        "parallel_tool_calls": True, "previous_response_id": previous,
        "reasoning": {"effort": None, "summary": None}, "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
        "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": None, "user": None,
        "safety_identifier": None, "metadata": {},
    }


def _message(words: list[str], done: bool) -> dict[str, Any]:
    content = [_text_part(" ".join(words))] if done else []
    return {"id": f"msg_{secrets.token_hex(24)}", "type": "message",
            "status": "completed" if done else "in_progress", "content": content,
            "role": "assistant"}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _complete(response: dict[str, Any], words: list[str]) -> None:
    response["status"] = "completed"
    response["output"] = [_message(words, done=True)]
    response["usage"] = {"input_tokens": INPUT_TOKENS,
                         "input_tokens_details": {"cached_tokens": 0},
                         "output_tokens": len(words),
                         "output_tokens_details": {"reasoning_tokens": 0},
                         "total_tokens": INPUT_TOKENS + len(words)}


def input_refusal(given: Any) -> web.Response | None:
    """OpenAI's 400 for an `input` it cannot read, None for one it can: a string, a list
    of objects (the items), or none at all (a follow-up may have only its previous
    response). It types the request before it reads it: a bad `input` is refused first."""
    if given is None or isinstance(given, str):
        return None
    if not isinstance(given, list):
        return _invalid_type("input", "one of a string or array of input items", given)
    for index, item in enumerate(given):
        if not isinstance(item, dict):
            return _invalid_type(f"input[{index}]", "an object", item)
    return None


def _invalid_type(param: str, expected: str, given: Any) -> web.Response:
    message = f"Invalid type for '{param}': expected {expected}, but got {_json_type(given)}"
    error = {"message": f"{message} instead.", "type": "invalid_request_error", "param": param,
             "code": "invalid_type"}
    return web.json_response({"error": error}, status=400)


def _json_type(value: Any) -> str:
    """What OpenAI calls a JSON value's type in its messages (a bool tried before an int:
    Python counts it one)."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a decimal"),
                       (str, "a string"), (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null"


def _input_items(given: Any) -> list[dict[str, Any]]:
    """The items of an `input` that `input_refusal` let through, as OpenAI keeps them."""
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
    items = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        items.append({"id": f"msg_{secrets.token_hex(24)}", "type": "message",
                      "role": message.get("role", "user"), "status": "completed",
                      "content": parts or []})
    return items


async def _cut_json(request: web.Request, document: dict[str, Any]) -> web.StreamResponse:
    """Half of a JSON answer, then a reset: an upstream that breaks off mid-body."""
    payload = json.dumps(document).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(payload)
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    assert request.transport is not None
    request.transport.abort()
    await asyncio.sleep(3600)
    return response


async def _stream(request: web.Request, response: dict[str, Any], words: list[str],
                  how: Behaviour, after: int = -1, item_id: str | None = None
                  ) -> web.StreamResponse:
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                         "Cache-Control": "no-cache"})
    await stream.prepare(request)
    sequence = iter(range(1_000_000))

    async def event(kind: str, **data: Any) -> None:
        payload = {"type": kind, "sequence_number": next(sequence), **data}
        if payload["sequence_number"] > after:  # a resumed stream skips what it had
            await stream.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

    await event("response.created", response=response)
    if response["status"] == "queued":  # a background response, streamed as it runs
        await event("response.queued", response=response)
        response["status"] = "in_progress"
    await event("response.in_progress", response=response)
    item = _message([], done=False)
    item["id"] = item_id or item["id"]
    at = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    await event("response.output_item.added", output_index=0, item=item)
    await event("response.content_part.added", part=_text_part(""), **at)
    for i, word in enumerate(words):
        if i == how.reset_after_chunks:
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(3600)
        if i == how.end_after_chunks:
            await stream.write_eof()
            return stream
        await event("response.output_text.delta", delta=word if i == 0 else " " + word,
                    logprobs=[], **at)
        if i == 0 and how.gate is not None:
            await how.gate.wait()
    text = " ".join(words)
    await event("response.output_text.done", text=text, logprobs=[], **at)
    await event("response.content_part.done", part=_text_part(text), **at)
    _complete(response, words)
    item = {**response["output"][0], "id": item["id"]}
    response["output"] = [item]
    await event("response.output_item.done", output_index=0, item=item)
    await event("response.completed", response=response)
    await stream.write_eof()
    return stream
