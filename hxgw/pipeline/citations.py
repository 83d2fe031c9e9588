"""The files a Responses answer cites (`file_citation` annotations, from file_search),
bound to the upstream that holds them as the files routes bind them
(hxgw.upstream.affinity): a file uploaded through the gateway is cited by the id its
client got for it, which the files routes know.

Only the annotations are read: a client's `metadata`, which a response echoes, a tool
call's arguments and a model's text may hold a `file_id` of their own, which stays.
"""

from __future__ import annotations

from typing import Any

from hxgw import jsonio
from hxgw.upstream.affinity import bind, unbind

CITATION = b'"file_citation"'


def cited_in_body(data: bytes, upstream: str) -> bytes:
    """A whole JSON answer of `upstream`'s, its citations bound."""
    if CITATION not in data:
        return data
    try:
        document = jsonio.loads(data)
    except jsonio.DecodeError:
        return data
    return jsonio.dumps(document) if _bind_cited(document, upstream) else data


def cited_in_events(block: bytes, upstream: str) -> bytes:
    """Whole SSE lines of `upstream`'s, each data line's citations bound."""
    if CITATION not in block:
        return block
    lines = block.splitlines(keepends=True)
    for at, line in enumerate(lines):
        if not line.startswith(b"data:") or CITATION not in line:
            continue
        text = line.rstrip(b"\r\n")
        try:
            event = jsonio.loads(text[5:])
        except jsonio.DecodeError:
            continue
        if _bind_cited(event, upstream):
            prefix = b"data: " if text.startswith(b"data: ") else b"data:"
            lines[at] = prefix + jsonio.dumps(event) + line[len(text) :]
    return b"".join(lines)


def _bind_cited(document: Any, upstream: str) -> bool:
    """Bind, in place, every file a `file_citation` in `document` names, but in a
    `metadata` (the client's own); whether any was. A stack, not recursion: an upstream's
    JSON may be nested deeper than Python recurses."""
    changed, stack = False, [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        ident = node.get("file_id") if node.get("type") == "file_citation" else None
        if isinstance(ident, str) and ident and unbind(ident) is None:
            node["file_id"] = bind("upstream", upstream, ident)
            changed = True
        stack.extend(v for k, v in node.items() if k != "metadata" and isinstance(v, dict | list))
    return changed
