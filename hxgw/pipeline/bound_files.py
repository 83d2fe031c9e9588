"""The files a Responses answer names (a `file_citation` or `file_path` annotation, a
file_search result, an `input_file` its input items list back), bound to the upstream
that holds them as the files routes bind them (hxgw.upstream.affinity): a file uploaded
through the gateway is named by the id its client got for it, which the files routes know.

The answer is read as JSON, member by member: a client's `metadata`, which a response
echoes, a tool call's arguments and a model's text may hold a `file_id` of their own,
which stays. (A line too long to be read whole, passed on in pieces, is not read; one
nested deeper than the gateway writes JSON goes on as it came, its files unbound.)
"""

from __future__ import annotations

from typing import Any

from hxgw import jsonio
from hxgw.upstream.affinity import bind, unbind

FILE = "file-"
"""How the files API's ids begin (a container's files, `cfile_`, are not the gateway's)."""

NAMED = b'"file_id"'
"""What an answer that names a file holds."""


def bound_in_body(data: bytes, upstream: str) -> bytes:
    """A whole JSON answer of `upstream`'s, the files it names bound."""
    if NAMED not in data:
        return data
    try:
        document = jsonio.loads(data)
    except jsonio.DecodeError:
        return data
    if not _bind_named(document, upstream):
        return data
    return _written(document) or data


def bound_in_events(block: bytes, upstream: str) -> bytes:
    """Whole SSE lines of `upstream`'s, the files each data line names bound."""
    if NAMED not in block:
        return block
    lines = block.splitlines(keepends=True)
    for at, line in enumerate(lines):
        if not line.startswith(b"data:") or NAMED not in line:
            continue
        text = line.rstrip(b"\r\n")
        try:
            event = jsonio.loads(text[5:])
        except jsonio.DecodeError:
            continue
        if _bind_named(event, upstream) and (written := _written(event)) is not None:
            prefix = b"data: " if text.startswith(b"data: ") else b"data:"
            lines[at] = prefix + written + line[len(text) :]
    return b"".join(lines)


def _written(document: Any) -> bytes | None:
    """`document` as JSON again; None when it nests deeper than orjson writes (254 levels,
    where it reads 1024). A stream's event wraps the response, which echoes the client's
    tools one level deeper than its body held them, and a body is taken 254 levels deep:
    the error had broken the stream off before its first event."""
    try:
        return jsonio.dumps(document)
    except jsonio.EncodeError:
        return None


def _bind_named(document: Any, upstream: str) -> bool:
    """Bind, in place, every upstream file `document` names by a `file_id` member, but in
    a `metadata` (the client's own); whether any was. A stack, not recursion: an
    upstream's JSON may be nested deeper than Python recurses."""
    changed, stack = False, [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        ident = node.get("file_id")
        if isinstance(ident, str) and ident.startswith(FILE) and unbind(ident) is None:
            node["file_id"] = bind("upstream", upstream, ident)
            changed = True
        stack.extend(v for k, v in node.items() if k != "metadata" and isinstance(v, dict | list))
    return changed
