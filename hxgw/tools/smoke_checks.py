"""The smoke checks themselves: liveness, readiness, the model list, a deterministic
chat plain and streamed, embeddings, and one request per configured group."""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

EXPECTED = "HX-OK"
PROMPT = f"Return exactly the text: {EXPECTED}"


UNCHECKED = frozenset({"audio_transcription", "audio_speech", "image_generation"})
"""The modes of groups smoke passes over: their requests are uploads or make media."""


class CheckFailed(Exception):
    """A check's reason to fail."""


@dataclass(slots=True)
class Result:
    name: str
    result: Literal["ok", "FAIL", "skip"]
    seconds: float
    detail: str = ""


@dataclass(slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any


class Smoke:
    """The checks, in order, against one gateway with one key."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        self.session, self.url, self.key = session, url, key
        self.run_id = secrets.token_hex(4)
        self.count = 0
        self.request_id = ""
        self.groups: list[dict[str, Any]] | None = None

    async def run(self) -> list[Result]:
        results = [
            await self.check("healthz", self.healthz),
            await self.check("readyz", self.readyz),
            await self.check("models", self.models),
            await self.check("chat", self.chat),
            await self.check("chat stream", self.chat_stream),
        ]
        if self.groups is None:
            return [*results, Result("embeddings", "skip", 0.0, "no model list")]
        embedding = [g for g in self.groups if g.get("hx_mode") == "embedding"]
        if embedding:
            name = str(embedding[0]["id"])
            results.append(await self.check("embeddings", functools.partial(self.embed, name)))
        else:
            results.append(Result("embeddings", "skip", 0.0, 'no group with hx_mode "embedding"'))
        for group in self.groups:
            name, mode = str(group["id"]), group.get("hx_mode")
            label = f"group {name} ({mode or 'chat'})"
            if mode in UNCHECKED:  # it takes uploads or makes media: nothing to ask in text
                results.append(Result(label, "skip", 0.0, f"smoke does not check {mode}"))
                continue
            results.append(await self.check(label, functools.partial(self.group, name, mode)))
        return results

    async def check(self, name: str, run: Callable[[], Awaitable[str]]) -> Result:
        self.count += 1
        self.request_id = request_id = f"smoke-{self.run_id}-{self.count}"
        started = time.perf_counter()
        outcome: Literal["ok", "FAIL"] = "FAIL"
        try:
            note = await run()
            outcome = "ok"
        except aiohttp.ClientConnectorError as exc:  # its own text adds "ssl:default"
            note = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc}"
        except (CheckFailed, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            note = f"{str(exc) or type(exc).__name__} (request_id={request_id})"
        except (LookupError, TypeError, AttributeError) as exc:  # an answer of the wrong shape
            note = f"unexpected answer: {type(exc).__name__} {exc} (request_id={request_id})"
        seconds = time.perf_counter() - started
        return Result(name, outcome, seconds, _redacted(note, self.key))

    async def healthz(self) -> str:
        reply = await self.call("GET", "/healthz", auth=False)
        _expect(reply.status == 200 and reply.body == {"status": "ok"}, _failure(reply))
        return ""

    async def readyz(self) -> str:
        reply = await self.call("GET", "/readyz", auth=False)
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.status == 503 and isinstance(body.get("reasons"), list):
            raise CheckFailed("not ready: " + "; ".join(map(str, body["reasons"])))
        _expect(reply.status == 200 and body.get("ready") is True, _failure(reply))
        return ""

    async def models(self) -> str:
        reply = await self.call("GET", "/v1/models")
        _expect(reply.status == 200, _failure(reply))
        data = reply.body.get("data") if isinstance(reply.body, dict) else None
        _expect(isinstance(data, list) and len(data) > 0, "the model list is empty")
        assert isinstance(data, list)
        self.groups = [e for e in data if isinstance(e, dict) and e.get("hx_group") is True]
        return f"{len(data)} entries, {len(self.groups)} groups"

    def _default_group(self) -> dict[str, str]:
        """The default group by name; without the model list the gateway picks it anyway."""
        for group in self.groups or []:
            if group.get("hx_default") is True:
                return {"model": str(group["id"])}
        return {}

    async def chat(self) -> str:
        reply = await self.call("POST", "/v1/chat/completions", _chat_body(self._default_group()))
        content = _chat_content(reply)
        _expect(content.strip() == EXPECTED, f"answered {content[:60]!r}, expected {EXPECTED!r}")
        return f"{EXPECTED} from {_served_by(reply)}"

    async def chat_stream(self) -> str:
        body = _chat_body(self._default_group()) | {"stream": True}
        started = time.perf_counter()
        first: float | None = None
        chunks, parts, done, event = 0, [], False, ""
        url, headers = self.url + "/v1/chat/completions", self._headers(auth=True)
        async with self.session.post(url, json=body, headers=headers) as resp:
            if resp.status != 200:
                raise CheckFailed(_failure(Reply(resp.status, resp.headers, await _json(resp))))
            _expect(resp.content_type == "text/event-stream", f"got {resp.content_type}")
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                    _expect(event != "error", f"stream ended with an error event: {data[:200]}")
                    if data == "[DONE]":
                        done = True
                        continue
                    first = first or time.perf_counter() - started
                    chunks += 1
                    for choice in json.loads(data).get("choices") or []:
                        parts.append((choice.get("delta") or {}).get("content") or "")
                elif not line:
                    event = ""
            served = resp.headers.get("X-HX-Model", "?")
        content = "".join(parts)
        _expect(chunks > 0, "no chunk arrived")
        _expect(done, f"the stream did not end with [DONE] after {chunks} chunks")
        _expect(content.strip() == EXPECTED, f"answered {content[:60]!r}, expected {EXPECTED!r}")
        return f"{EXPECTED} in {chunks} chunks, first after {(first or 0) * 1000:.0f} ms, from {served}"

    async def embed(self, model: str) -> str:
        reply = await self.call("POST", "/v1/embeddings", {"model": model, "input": EXPECTED})
        _expect(reply.status == 200, _failure(reply))
        try:
            vector = reply.body["data"][0]["embedding"]
        except (KeyError, IndexError, TypeError):
            raise CheckFailed("the answer has no data[0].embedding") from None
        _expect(isinstance(vector, list) and len(vector) > 0, "the embedding is empty")
        return f"{len(vector)} dimensions from {_served_by(reply)}"

    async def group(self, name: str, mode: object) -> str:
        if mode == "embedding":
            return await self.embed(name)
        if mode == "moderation":
            reply = await self.scores("/v1/moderations", {"model": name, "input": PROMPT})
        elif mode == "rerank":
            documents = {"query": PROMPT, "documents": [PROMPT]}
            reply = await self.scores("/v1/rerank", {"model": name, **documents})
        elif mode == "completion":
            body = {"model": name, "prompt": PROMPT, "max_tokens": 10, "temperature": 0}
            reply = await self.call("POST", "/v1/completions", body)
            _expect(reply.status == 200, _failure(reply))
            text = (reply.body.get("choices") or [{}])[0].get("text")
            _expect(isinstance(text, str) and text.strip() != "", "the completion is empty")
        else:
            reply = await self.call("POST", "/v1/chat/completions", _chat_body({"model": name}))
            _expect(_chat_content(reply).strip() != "", "the answer is empty")
        group = reply.headers.get("X-HX-Group", name)
        _expect(group == name, f"served by group {group!r}, not {name!r}")
        return f"from {_served_by(reply)}"

    async def scores(self, path: str, body: dict[str, Any]) -> Reply:
        """A moderation's or a rerank's answer, which holds its `results`."""
        reply = await self.call("POST", path, body)
        _expect(reply.status == 200, _failure(reply))
        results = reply.body.get("results") if isinstance(reply.body, dict) else None
        _expect(isinstance(results, list) and len(results) > 0, "the answer has no results")
        return reply

    async def call(
        self, method: str, path: str, body: object = None, *, auth: bool = True
    ) -> Reply:
        url, headers = self.url + path, self._headers(auth)
        async with self.session.request(method, url, json=body, headers=headers) as resp:
            return Reply(resp.status, resp.headers, await _json(resp))

    def _headers(self, auth: bool) -> dict[str, str]:
        headers = {"X-Request-ID": self.request_id}
        return headers | {"Authorization": f"Bearer {self.key}"} if auth else headers


async def _json(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _expect(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckFailed(reason)


def _failure(reply: Reply) -> str:
    body = reply.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"HTTP {reply.status}: {body['error'].get('message')}"
    return f"HTTP {reply.status}: {str(body)[:200]}"


def _chat_body(model: dict[str, str]) -> dict[str, Any]:
    messages = [{"role": "user", "content": PROMPT}]
    return model | {"messages": messages, "temperature": 0, "max_tokens": 10}


def _chat_content(reply: Reply) -> str:
    _expect(reply.status == 200, _failure(reply))
    try:
        content = reply.body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise CheckFailed("the answer has no choices[0].message.content") from None
    _expect(isinstance(content, str), "the answer's content is not text")
    return str(content)


def _served_by(reply: Reply) -> str:
    return reply.headers.get("X-HX-Model", "?")


def _redacted(note: str, key: str) -> str:
    """A note without the key in it (an answer may echo it back). A key under 8
    characters is not looked for: it would be found in ordinary words of the note."""
    return note.replace(key, "***") if len(key) >= 8 else note
