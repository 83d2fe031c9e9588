"""How much a request's prompt holds: the characters of its text, and apart from them
the characters of the media sent inline, which providers count by pixels, seconds or
pages, not by characters. Routing keeps a long prompt off a model with a smaller
`max_context` by the first; a key's limits count the second at their own rate
(hxgw.pipeline.billing.usage). And how long an answer the request allows, each field
read alike: what routing adds to the prompt to see it fit (`asked_answer`), and what a
key's limits reserve (`largest_answer`).
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

MAX_TOKENS = 10**9
"""The most tokens one request is counted for, asked or reported: a thousand times any
model's context. A larger figure is not a count, and would overflow the limiters' and
the ledger's 64-bit integers (a client's `max_tokens` of 2**64 - 1 is valid JSON)."""
ANSWER_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
"""Where a request says the most its answer may be: Chat's (and its older name, which an
OpenAI-compatible server such as vLLM obeys only without the new one), and Responses'
(Anthropic's Messages take `max_tokens`)."""
MAX_WALKED = 100_000
"""Items read one by one, at most: a list or object that would take the walk past them
counts an item a token, unread, so that a body of millions of token ids or parts (16 MB
of them fits the body limit) cannot hold the event loop for a second."""
_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,")


class Size(NamedTuple):
    text: int
    media: int


def measure(value: object) -> Size:
    """The characters of every text in a field of the request, at any depth (message
    contents and tool results, tool calls' arguments, tool definitions; a token id
    counts as four, as a token does), and of the media sent inline (a base64 data: URL,
    Anthropic's base64 `source`, OpenAI's `input_audio` and `file_data`). Walked with a
    stack: JSON may nest deeper than Python recurses."""
    text = media = 0
    left = MAX_WALKED  # items that may yet be read
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _DATA_URL.match(item):
                media += len(item)
            else:
                text += len(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            text += 4
        elif isinstance(item, (list, dict)) and len(item) > left:
            text += 4 * len(item)
        elif isinstance(item, list):
            left -= len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            left -= len(item)
            for key, field in item.items():
                if _inline_media(item, key):
                    media += len(field) if isinstance(field, str) else 0
                else:
                    stack.append(field)
    return Size(text, media)


def _inline_media(part: dict[str, Any], key: str) -> bool:
    if key == "file_data":
        return True
    # {"type": "base64", "media_type": ..., "data": ...}; {"data": ..., "format": "wav"}
    return key == "data" and ("media_type" in part or "format" in part)


def asked_answer(body: dict[str, Any]) -> int:
    """The most tokens the request allows its answer, as an upstream reads it: the first
    of ANSWER_FIELDS it gives; 0 when it gives none. What routing fits to a context."""
    return next((n for field in ANSWER_FIELDS if (n := asked(body.get(field)))), 0)


def largest_answer(body: dict[str, Any]) -> int:
    """The largest answer any of the fields allows; 0 when none does. What a key's limits
    reserve: which field an upstream obeys when given two is its own affair, and a
    reservation is corrected once the answer is known, where a refused route is not."""
    return max(asked(body.get(field)) for field in ANSWER_FIELDS)


def asked(value: object) -> int:
    """A positive count from a request body, as a lenient upstream reads it (pydantic's
    int takes 1000.0 and "1000" as 1000), at most MAX_TOKENS; 0 for anything else."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return 0
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return math.ceil(min(value, MAX_TOKENS))
    return 0
