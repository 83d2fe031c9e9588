"""Media sent inside a request body as base64 text: images, audio, documents.

A provider counts an image by its pixels (OpenAI's high detail at most about 1.5k tokens,
Anthropic's about 1.6k), audio by its seconds, a document by its pages: never by the bytes
of their base64, as text is counted by its bytes. At the text's rate a 600 KB photo would
reserve 150k prompt tokens, more than many keys' tokens per minute, and be refused for
good as larger than the limit itself.
"""

from __future__ import annotations

import re
from typing import Any

LARGE_BODY = 64 * 1024
"""Below this a body counts at the text's rate, whole: 16k tokens at most, not worth a
walk through it."""
LONG_STRING = 1024
CHARACTERS_PER_TOKEN = 32
"""Inline data's base64 characters per prompt token: a 600 KB photo counts as 19k tokens,
still more than a provider bills for one (so a reservation stays on the safe side), a PDF
of 50 pages (3 MB or so) as 100k, near what its pages cost."""
_BASE64 = re.compile(r"(?:data:[\w.+/-]*;base64,)?[A-Za-z0-9+/]{256}")
"""A string of inline data: base64 (a data URL's or bare, as Anthropic's `source.data` and
OpenAI's `input_audio.data` are) with no space in its first 256 characters, which prose
and code have."""


def inline_characters(body: Any) -> int:
    """How many characters of the body's strings are inline data."""
    total = 0
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and len(value) >= LONG_STRING and _BASE64.match(value):
            total += len(value)
    return total
