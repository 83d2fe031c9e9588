"""Reading an upstream's `usage` from the bytes of its answer: the prompt and completion
tokens, and the parts of them a provider bills apart (cached and cache-written prompt,
reasoning). Searched for in the bytes, not parsed: a stream's usage comes in its last
event, a plain answer's at its end, and the rest of the answer need not be read as JSON.
OpenAI's names, LiteLLM's order and Anthropic's and the Responses API's names are all
found; `hxgw.pipeline.billing.usage` works out from them what a request used.
"""

from __future__ import annotations

import re
from typing import Any

from hxgw import jsonio
from hxgw.routing.prompt_size import MAX_TOKENS

# A usage's two counts side by side, in either order (OpenAI writes prompt_tokens first,
# LiteLLM completion_tokens): one search for both.
_BOTH = re.compile(
    rb'"(?:prompt_tokens"\s*:\s*(\d+)\s*,\s*"completion_tokens"\s*:\s*(\d+)'
    rb'|completion_tokens"\s*:\s*(\d+)\s*,\s*"prompt_tokens"\s*:\s*(\d+))'
)
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_NO_USAGE_YET = re.compile(rb'"usage"\s*:\s*null\b')
_EVENT_END = re.compile(rb"\n\n|\r\n\r\n|\r\r")
# Each count alone, for a usage with one of them (embeddings) or with others between.
_PROMPT = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
# Anthropic's (and the Responses API's) names; a stream's output count grows as it goes.
_INPUT = re.compile(rb'"input_tokens"\s*:\s*(\d+)')
_OUTPUT = re.compile(rb'"output_tokens"\s*:\s*(\d+)')
# Anthropic counts the prompt read from or written to its cache apart from `input_tokens`
# (OpenAI's prompt_tokens include their cached part): all three are the prompt.
_CACHE_WRITTEN = re.compile(rb'"cache_creation_input_tokens"\s*:\s*(\d+)')
_CACHE_READ = re.compile(rb'"cache_read_input_tokens"\s*:\s*(\d+)')
_CACHED = re.compile(rb'"cached_tokens"\s*:\s*(\d+)')
"""OpenAI's part of `prompt_tokens` (`input_tokens` in Responses) read from its cache."""
_REASONING = re.compile(rb'"reasoning_tokens"\s*:\s*(\d+)')
"""OpenAI's part of `completion_tokens` (`output_tokens` in Responses) spent reasoning."""


def last_usage(data: bytes) -> bytes:
    """`data` from its last usage object on; b"" when it has none. An earlier one may be
    a client's own JSON that the upstream echoes (a Responses answer repeats the request's
    tools and text format before its usage); a later `"usage"` key (in `metadata`) holds a
    string."""
    found = None
    for found in _USAGE_OBJECT.finditer(data):  # noqa: B007 -- the last one is wanted
        pass
    if found is None:
        return b""
    tail = data[found.start() :]
    end = _EVENT_END.search(tail)
    if _NO_USAGE_YET.search(tail, 0, end.start() if end else len(tail)):
        # The object was the client's own, in the tools a Responses event repeats before
        # the answer's `"usage": null`: a stream cut there has no usage reported yet.
        return b""
    return tail


# In OpenAI's APIs what a model writes reaches an answer as JSON strings, escaped, so a
# `"usage"` in the clear is the answer's own or the client's echoed before it. In
# Anthropic's, a tool's `input` is JSON as the model wrote it, and LiteLLM's Messages
# answers put their usage before the content: there the answer's own usage is the
# member of its top-level object whose neighbours on one side, to the object's start or
# its end, are scalars (or a flat `metadata`), and is found by parsing where neither is.
_STRING = rb'"(?:[^"\\]++|\\.)*+"'
_SCALAR = rb"(?:" + _STRING + rb"|[-+.\deE]++|true|false|null)"
_FLAT = rb"\{\s*+(?:" + _STRING + rb"\s*+:\s*+" + _SCALAR + rb"\s*+(?:,\s*+)?)*+\}"
_MEMBER = _STRING + rb"\s*+:\s*+(?:" + _SCALAR + rb"|" + _FLAT + rb")\s*+"
_NESTED = rb"\{(?:[^{}\"]++|" + _STRING + rb")*+\}"
for _ in range(2):  # a usage's details nest two deep (Anthropic's `cache_creation`)
    _NESTED = rb"\{(?:[^{}\"]++|" + _STRING + rb"|" + _NESTED + rb")*+\}"
_USAGE_MEMBER = re.compile(rb'"usage"\s*+:\s*+' + _NESTED)
_SCALARS_BEFORE = re.compile(rb"\s*+\{\s*+(?:" + _MEMBER + rb",\s*+)*(?=\"usage\"\s*+:\s*+\{)")
_SCALARS_AFTER = re.compile(rb"\s*+(?:,\s*+" + _MEMBER + rb")*+\}\s*+\Z")


def messages_usage(head: bytes, tail: bytes, whole: bool) -> bytes:
    """The `"usage": {...}` member of a plain Anthropic-shaped answer, b"" when it has
    none: `head` is the answer's start, `tail` its end (the same bytes when `whole`).
    Where Anthropic puts it, after the content; where LiteLLM does, before it; else, when
    the answer is held whole, the top-level member as parsed (when it is not, the last
    usage object, as in OpenAI's answers)."""
    found = None
    for found in _USAGE_MEMBER.finditer(tail):  # noqa: B007 -- the last one is wanted
        pass
    if found is not None and _SCALARS_AFTER.match(tail, found.end()):
        return found[0]
    start = _SCALARS_BEFORE.match(head)
    if start is not None and (found := _USAGE_MEMBER.match(head, start.end())):
        return found[0]
    if not whole:
        return last_usage(tail)
    try:
        usage = jsonio.loads(tail).get("usage")
    except (jsonio.DecodeError, AttributeError):
        return b""
    return written_usage(usage) if isinstance(usage, dict) else b""


def written_usage(usage: dict[str, Any]) -> bytes:
    """A `usage` parsed from an answer, written again as `"usage": {...}` to be read as
    found in one; without its members nested deeper than orjson writes (254 levels, where
    it reads 1024), whose error had lost the count and the answer with it."""
    try:
        return b'"usage":' + jsonio.dumps(usage)
    except jsonio.EncodeError:
        pass
    kept = {}
    for name, value in usage.items():
        try:
            jsonio.dumps({"usage": {name: value}})
        except jsonio.EncodeError:
            continue
        kept[name] = value
    return b'"usage":' + jsonio.dumps(kept)


def reported_tokens(data: bytes) -> tuple[int, int] | None:
    """The prompt and completion tokens of a `usage` in `data`, None when there is none."""
    # The last: a stream with a running usage on every chunk ends with its whole count.
    tail = last_usage(data)
    if not tail:
        return None
    found = next(reversed([*_BOTH.finditer(tail)]), None)
    if found is not None:
        prompt, completion, completion_first, prompt_second = found.groups()
        return _count(prompt or prompt_second), _count(completion or completion_first)
    prompt_alone, completion_alone = _PROMPT.search(tail), _COMPLETION.search(tail)
    if prompt_alone is not None or completion_alone is not None:
        return (
            _count(prompt_alone[1]) if prompt_alone else 0,
            _count(completion_alone[1]) if completion_alone else 0,
        )
    # Anthropic's input counts come in its first usage, the output in its last: a larger
    # input count earlier in `data` can only make the bill larger.
    inputs, outputs = _INPUT.findall(data), _OUTPUT.findall(tail)
    if not inputs and not outputs:
        return None
    prompt = sum(
        max(map(_count, found), default=0)
        for found in (inputs, _CACHE_WRITTEN.findall(data), _CACHE_READ.findall(data))
    )
    return min(prompt, MAX_TOKENS), _count(outputs[-1]) if outputs else 0


def reported_parts(data: bytes, prompt: int, completion: int) -> tuple[int, int, int]:
    """Of a `usage` in `data` whose counts are `prompt` and `completion`: the prompt tokens
    read from and written to the provider's cache (Anthropic's counts, which its first
    usage has, or OpenAI's `cached_tokens`), and the completion tokens the model reasoned
    in (OpenAI's `reasoning_tokens`). Each is looked for only where its name's start is:
    most answers report none of them. Each is a part of its count, and no more of it: a
    cache read said to be larger than its prompt was priced at the cache's discount in
    full, which ran below zero and took the completion's price with it."""
    read = written = reasoning = 0
    if b"cache_" in data:  # Anthropic's cache_read_input_tokens, cache_creation_...
        read = max(map(_count, _CACHE_READ.findall(data)), default=0)
        written = max(map(_count, _CACHE_WRITTEN.findall(data)), default=0)
    if b"_details" in data:  # OpenAI's prompt_tokens_details, completion_tokens_details
        tail = last_usage(data)
        if not read and (cached := _CACHED.findall(tail)):
            read = _count(cached[-1])
        if thought := _REASONING.findall(tail):
            reasoning = _count(thought[-1])
    read = min(read, prompt)
    return read, min(written, prompt - read), min(reasoning, completion)


def _count(digits: bytes) -> int:
    # Read only as far as the cap: int() of thousands of digits is slow, then refused.
    return MAX_TOKENS if len(digits) > 10 else min(int(digits), MAX_TOKENS)
