"""The ids of upstream state in a relayed answer, turned into the ids the client sees.

Responses (`ResponseIds`):

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
it is complete, is rewritten in one piece. The files its annotations cite are
bound to the upstream that served it (hxgw.pipeline.bound_files).

Files and batches (`HeldIds`) are bound to the upstream that holds them. Their
answers are small JSON documents (an object, a list of them) and never streams:
each is rewritten whole, field by field.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from hxgw import jsonio
from hxgw.config import Model
from hxgw.pipeline.bound_files import bound_in_body, bound_in_events
from hxgw.upstream.affinity import bind

# The events of a Responses stream that carry the whole response object, id first.
_RESPONSE_OBJECT = b'"response"'
MAX_REBOUND = 64 * 1024 * 1024
"""The largest response object rebound whole: mostly text, cheap to parse."""
MAX_HELD_ANSWER = 8 * 1024 * 1024
"""The largest answer on files or batches rebound whole: OpenAI's largest page is
10,000 files, about 2.5 MB. Parsed, a list costs about nine times its size."""


class Rebind(Protocol):
    """Turns the upstream's ids in one answer into the client's."""

    @property
    def max_body(self) -> int:
        """The largest whole JSON answer taken; the gateway's 502 past it."""

    def body(self, data: bytes, served: Model) -> bytes:
        """A whole JSON answer from `served`."""

    def events(self, block: bytes, served: Model) -> bytes:
        """Whole SSE lines of a stream from `served`, in order."""


class ResponseIds:
    """Swaps upstream response ids for client ids in one answer."""

    __slots__ = ("_learn", "_named", "_swaps", "background")
    max_body = MAX_REBOUND

    def __init__(self, known: dict[str, str], *, learn: bool) -> None:
        """`known`: upstream id -> the client's id for it; `learn`: whether the answer
        may hold a response whose ids are not known yet (its own, the one before it)."""
        self._swaps = [(_quoted(up), _quoted(client)) for up, client in known.items()]
        # An error quotes an id its own way ("Response with id 'resp_1' not found.").
        self._named = [(up.encode(), client.encode()) for up, client in known.items()]
        self._learn = learn
        self.background: dict[str, Any] | None = None
        """The response the answer carries, when it was made with `background: true`,
        with its client id as `id` (hxgw.pipeline.billing.background bills it)."""

    def body(self, data: bytes, served: Model) -> bytes:
        document = None
        if self._learn or b'"error"' in data:
            with contextlib.suppress(jsonio.DecodeError):  # not JSON: nothing to bind
                document = jsonio.loads(data)
        if self._learn:
            self._learn = False
            self._learned(document, served.name)
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            for upstream, client in self._named:
                data = data.replace(upstream, client)
        return bound_in_body(self._swap(data), served.upstream)

    def events(self, block: bytes, served: Model) -> bytes:
        if self._learn and _RESPONSE_OBJECT in block:
            for line in block.splitlines():
                if line.startswith(b"data:") and _RESPONSE_OBJECT in line:
                    try:
                        event = jsonio.loads(line[5:])
                    except jsonio.DecodeError:
                        continue
                    if isinstance(event, dict) and self._learned(
                        event.get("response"), served.name
                    ):
                        self._learn = False
                        break
        return bound_in_events(self._swap(block), served.upstream)

    def _learned(self, response: Any, model_name: str) -> bool:
        """Bind the id of a response object to the model that made it, and the id of the
        one it continues, which that model made too (a follow-up goes to its model)."""
        if not isinstance(response, dict) or not jsonio.one_of(
            response.get("object"), RESPONSE_OBJECTS
        ):
            return False
        upstream_id = response.get("id")
        if not isinstance(upstream_id, str) or not upstream_id:
            return False
        for ident in (upstream_id, response.get("previous_response_id")):
            if isinstance(ident, str) and ident:
                self._swaps.append((_quoted(ident), _quoted(bind("model", model_name, ident))))
        if response.get("background") is True:
            self.background = {**response, "id": bind("model", model_name, upstream_id)}
        return True

    def _swap(self, data: bytes) -> bytes:
        for upstream, client in self._swaps:
            if upstream in data:
                data = data.replace(upstream, client)
        return data


RESPONSE_OBJECTS = frozenset({"response", "response.compaction"})
"""The objects a model makes whose ids the client gets bound to it (a compaction's too:
the upstream's own would be an id the gateway did not make)."""


def background_response(rebind: Rebind | None) -> dict[str, Any] | None:
    """The response an answer carried when it was made with `background: true`
    (`ResponseIds.background`); None for any other answer."""
    return rebind.background if isinstance(rebind, ResponseIds) else None


def _quoted(ident: str) -> bytes:
    return b'"' + ident.encode() + b'"'


HELD_OBJECTS = frozenset({"file", "batch"})
# A batch's files, which live on the batch's upstream.
FILE_FIELDS = ("input_file_id", "output_file_id", "error_file_id")


class HeldIds:
    """Binds the ids of files and batches in an answer to the upstream that served it."""

    __slots__ = ("_named", "document")
    max_body = MAX_HELD_ANSWER

    def __init__(self, named: dict[str, str] | None = None) -> None:
        """`named`: the upstream's ids for those the request named -> the client's. An
        error that quotes one ("No such File object: ...") says the id the client sent."""
        self._named = [(up.encode(), client.encode()) for up, client in (named or {}).items()]
        self.document: dict[str, Any] | None = None
        """The last answer that was an object or a list of them, as the client gets it
        (its ids bound), for `keep_to_owner`; None when none was."""

    def body(self, data: bytes, served: Model) -> bytes:
        self.document = None
        try:
            document = jsonio.loads(data)
        except jsonio.DecodeError:
            return data  # not JSON: nothing in it to bind
        if not isinstance(document, dict):
            return data
        if document.get("object") == "list":
            items = document.get("data")
            if not isinstance(items, list) or not all(_held(item) for item in items):
                return data
            for item in items:
                _bind_object(item, served.upstream)
            for field in ("first_id", "last_id"):
                _bind_field(document, field, served.upstream)
        elif _held(document):
            _bind_object(document, served.upstream)
        else:  # an error, or not an object of an upstream's
            for upstream, client in self._named:
                data = data.replace(upstream, client)
            return data
        try:
            written = jsonio.dumps_deep(document)
        except jsonio.EncodeError:
            return data  # nested past what can be written again: as it came, unbound
        self.document = document
        return written

    def events(self, block: bytes, served: Model) -> bytes:
        return block  # files and batches are not streamed


def _held(item: Any) -> bool:
    return isinstance(item, dict) and jsonio.one_of(item.get("object"), HELD_OBJECTS)


def _bind_object(item: dict[str, Any], upstream: str) -> None:
    for field in ("id", *FILE_FIELDS):
        _bind_field(item, field, upstream)


def _bind_field(document: dict[str, Any], field: str, upstream: str) -> None:
    value = document.get(field)
    if isinstance(value, str) and value:
        document[field] = bind("upstream", upstream, value)
