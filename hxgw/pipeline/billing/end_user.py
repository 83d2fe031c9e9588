"""Who in the client's app a request was for, as the client said it: a ledger row's
`end_user`, which `hxgw usage --by user` totals by."""

from __future__ import annotations

from typing import Any

from hxgw.usage import stored_text

END_USER_CHARS = 256
"""The most of an end user's id a row keeps: it is the client's to say (Anthropic takes
256 characters, OpenAI 64), and a ledger row is no place for a megabyte of it."""


def end_user(document: dict[str, Any]) -> str | None:
    """The end user a request's body names, or the response object that echoes it:
    OpenAI's `user`, or `safety_identifier` (which OpenAI now asks for in its place),
    else Anthropic's `metadata.user_id`; the first of them that is a string, not empty.
    None for none (a value of another type the upstream refuses)."""
    said = document.get("user")
    if not (isinstance(said, str) and said):
        said = document.get("safety_identifier")
    if not (isinstance(said, str) and said):
        metadata = document.get("metadata")
        said = metadata.get("user_id") if isinstance(metadata, dict) else None
    return stored_text(said, END_USER_CHARS) if isinstance(said, str) and said else None
