"""Ids of upstream state (responses, files, batches) bound to where that state lives.

A response made by one model can only be continued, read or deleted by the
same model on the same upstream: the state is there and nowhere else. The
gateway does not keep a table of which id lives where. It hands the client an
id that says so itself: the upstream's prefix (`resp_`, `file-`, `batch_`),
a mark, and the target and the upstream's id in unpadded URL-safe base64.

    resp_abc123  made by model gpt-a  ->  resp_hx1bTpncHQtYQpyZXNwX2FiYzEyMw

So a follow-up finds its model on any worker, on any instance, after any
reload or restart, with no store to share or lose. The id is not signed: it
only names a model or upstream, which the request must still be allowed to
use (the key's groups are checked as for a model named in a body). An id the
gateway did not make decodes to None, and the caller says it does not know it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal, NamedTuple

Kind = Literal["model", "upstream"]
"""What an id is bound to: the model that made a response, or the upstream that holds
a file or batch."""

MARK = "hx1"
_KINDS: dict[Kind, str] = {"model": "m", "upstream": "u"}
_KIND_OF = {letter: kind for kind, letter in _KINDS.items()}
# An upstream id's prefix: letters, then `_` or `-` (resp_, file-, batch_, msg_).
_PREFIX = re.compile(r"[A-Za-z]{1,16}[_-]")


class Bound(NamedTuple):
    kind: Kind
    target: str
    """The model's or the upstream's name in the gateway's config."""
    upstream_id: str
    """The id as the upstream knows it."""


def bind(kind: Kind, target: str, upstream_id: str) -> str:
    """The id a client sees for `upstream_id`, bound to `target`."""
    prefix = _PREFIX.match(upstream_id)
    payload = f"{_KINDS[kind]}:{target}\n{upstream_id}".encode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")
    return (prefix[0] if prefix else "") + MARK + encoded


def unbind(client_id: str) -> Bound | None:
    """What a client's id is bound to; None for an id the gateway did not make."""
    prefix = _PREFIX.match(client_id)
    rest = client_id[prefix.end() :] if prefix else client_id
    if not rest.startswith(MARK):
        return None
    encoded = rest[len(MARK) :]
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    head, newline, upstream_id = payload.partition("\n")
    letter, colon, target = head.partition(":")
    kind = _KIND_OF.get(letter)
    if kind is None or not colon or not newline or not target or not upstream_id:
        return None
    if upstream_id in (".", ".."):  # no upstream's id: a path step, which quoting keeps
        return None
    return Bound(kind, target, upstream_id)
