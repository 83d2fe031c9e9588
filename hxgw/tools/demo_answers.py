"""What the demo upstream answers, whatever API asks: a deterministic answer to a
prompt, a completion and embeddings as objects (served as they are, or a batch's
lines), and a request body read as the gateway would take it.

"Return exactly the text: X" answers X, "Count to N" answers "1 2 ... N", anything
else is echoed back.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import math
import re
import struct
import time
from typing import Any

from aiohttp import web

from hxgw import jsonio

MODELS = ("llm02-phi3", "llm01-llama3.2-3b", "emb-premium")
CONFIG = web.AppKey("config", argparse.Namespace)
_EXACT = re.compile(r"return exactly the text:\s*(.+)", re.IGNORECASE | re.DOTALL)
_COUNT = re.compile(r"count to (\d{1,5})", re.IGNORECASE)


def answer_for(prompt: str) -> str:
    if match := _EXACT.search(prompt):
        return match.group(1).strip()
    if match := _COUNT.search(prompt):
        return " ".join(str(i) for i in range(1, int(match.group(1)) + 1))
    return f"Demo upstream here. You said: {prompt.strip()[:200]}"


def embedding(text: str, dim: int) -> list[float]:
    """A unit vector that depends only on the text."""
    values: list[float] = []
    counter = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(v / 2**31 - 1.0 for v in struct.unpack("<8I", digest))
        counter += 1
    norm = math.sqrt(sum(v * v for v in values[:dim])) or 1.0
    return [round(v / norm, 6) for v in values[:dim]]


def answer_words(body: dict[str, Any], prompt: str, *limits: str) -> tuple[list[str], bool]:
    """The answer's words (a word is a token here), cut to the most the request asks for
    under the first of `limits` it sets, as a model stops there; and whether they were."""
    words = answer_for(prompt).split(" ")
    for name in limits:
        most = body.get(name)
        if isinstance(most, int) and not isinstance(most, bool) and most > 0:
            return words[:most], len(words) > most
    return words, False


def completion(body: dict[str, Any], chat: bool) -> dict[str, Any]:
    """A chat completion (or a text completion) object answering `body`."""
    prompt = prompt_of(body)
    limits = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
    words, cut = answer_words(body, prompt, *limits)
    text = " ".join(words)
    prompt_tokens = len(prompt.split())
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length" if cut else "stop"}
    choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-demo-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": str(body.get("model") or "demo"),
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        },
    }


def embedding_list(body: dict[str, Any], dim: int) -> dict[str, Any]:
    """The embeddings of `body`'s input; ValueError when it is not text."""
    given = body.get("input", body.get("prompt"))
    texts = given if isinstance(given, list) else [given]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("input must be a string or a list of strings")
    # As OpenAI's: the float32 values' bytes in base64 when asked (the python SDK asks so
    # by default, and decodes them), a list of numbers otherwise.
    coded = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _base64(embedding(t, dim)) if coded else embedding(t, dim),
        }
        for i, t in enumerate(texts)
    ]
    tokens = sum(len(str(t).split()) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body.get("model"), "usage": usage}


def _base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def prompt_of(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
                return str(content)
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


class _TooLarge(web.HTTPClientError):
    """A 413 with a body of our own (aiohttp's class writes its own text)."""

    status_code = 413


def _error(
    kind: type[web.HTTPClientError], message: str, code: str, param: str | None = None
) -> web.HTTPClientError:
    """An error in OpenAI's shape, as the API the demo stands in for answers."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return kind(text=jsonio.dumps({"error": error}).decode(), content_type="application/json")


async def json_body(request: web.Request) -> dict[str, Any]:
    limit = request.app[CONFIG].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _error(
            _TooLarge,
            f"request body of {request.content_length} bytes is over the {limit}-byte limit",
            "request_too_large",
        )
    try:
        body = jsonio.loads(await request.read())
    except web.HTTPRequestEntityTooLarge:
        raise _error(
            _TooLarge,
            f"request body is over the {limit}-byte limit",
            "request_too_large",
        ) from None
    except jsonio.DecodeError:
        raise _error(web.HTTPBadRequest, "invalid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, "expected a JSON object", "invalid_request")
    return body


def missing(name: str) -> web.HTTPClientError:
    """OpenAI's 400 for a request without a parameter it needs."""
    message = f"Missing required parameter: '{name}'."
    return _error(web.HTTPBadRequest, message, "missing_required_parameter", name)
