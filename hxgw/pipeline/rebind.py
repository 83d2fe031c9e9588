"""The ids of upstream state in a relayed answer, turned into the ids the client sees.

A Responses answer names its response (`id`, and `previous_response_id` when it
continues one); the client must get ids bound to the model that made it
(hxgw.upstream.affinity), or its follow-up could land on a model that never
heard of it. Ids already known before the answer (the one in the path, the
previous response's) map back to what the client sent; a new response's id is
learned from the answer and bound to the model that served it, which after a
failover is not the first candidate.

Ids are swapped as quoted JSON strings: an id inside a model's text is escaped
there and never matches. A stream is rewritten line by line as it is relayed,
so nothing is held back; a whole JSON answer, which an upstream only sends once
it is complete, is rewritten in one piece.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hxgw import jsonio
from hxgw.upstream.affinity import bind

# The events of a Responses stream that carry the whole response object, id first.
_RESPONSE_OBJECT = b'"response"'


class Rebind:
    """Swaps upstream ids for client ids in one answer."""

    __slots__ = ("_learn", "_swaps")

    def __init__(self, known: dict[str, str], *, learn: bool) -> None:
        """`known`: upstream id -> the client's id for it; `learn`: whether the answer
        makes a response whose id is not known yet."""
        self._swaps = [(_quoted(up), _quoted(client)) for up, client in known.items()]
        self._learn = learn

    def body(self, data: bytes, model_name: str) -> bytes:
        """A whole JSON answer."""
        if self._learn:
            self._learn = False
            with contextlib.suppress(jsonio.DecodeError):  # not JSON: nothing to bind
                self._learned(jsonio.loads(data), model_name)
        return self._swap(data)

    def events(self, block: bytes, model_name: str) -> bytes:
        """Whole SSE lines of a stream, in order."""
        if self._learn and _RESPONSE_OBJECT in block:
            for line in block.splitlines():
                if line.startswith(b"data:") and _RESPONSE_OBJECT in line:
                    try:
                        event = jsonio.loads(line[5:])
                    except jsonio.DecodeError:
                        continue
                    if isinstance(event, dict) and self._learned(event.get("response"), model_name):
                        self._learn = False
                        break
        return self._swap(block)

    def _learned(self, response: Any, model_name: str) -> bool:
        """Bind the id of a response object to the model that made it."""
        if not isinstance(response, dict) or response.get("object") != "response":
            return False
        upstream_id = response.get("id")
        if not isinstance(upstream_id, str) or not upstream_id:
            return False
        self._swaps.append((_quoted(upstream_id), _quoted(bind("model", model_name, upstream_id))))
        return True

    def _swap(self, data: bytes) -> bytes:
        for upstream, client in self._swaps:
            if upstream in data:
                data = data.replace(upstream, client)
        return data


def _quoted(ident: str) -> bytes:
    return b'"' + ident.encode() + b'"'
