"""CORS for the API routes: a chat page in a browser may call the gateway directly, as it
may call OpenAI's API. The operator's routes (status, metrics) never answer another
origin: the status page takes a password the browser would add by itself."""

from __future__ import annotations

import re

from hxgw.endpoints import OPERATOR, client_paths

# What a preflight may ask to send: header names only (an echo, so it must be one).
_HEADER_NAMES = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")
PREFLIGHT_MAX_AGE = "86400"
# By path, not by route: a wrong method on one (its 405) is the operator's too.
_OPERATOR_PATHS = frozenset(path for e in OPERATOR for path in client_paths(e))


def allowed_origin(origins: tuple[str, ...], origin: str | None, path: str) -> str | None:
    """The Access-Control-Allow-Origin for a request from `origin`, or None for none."""
    if origin is None or not origins or path in _OPERATOR_PATHS:
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


def cors_headers(allow: str) -> dict[str, str]:
    """On every answer to an allowed origin; every header may be read by the page, as no
    credential is ever included."""
    headers = {"Access-Control-Allow-Origin": allow, "Access-Control-Expose-Headers": "*"}
    if allow != "*":
        headers["Vary"] = "Origin"
    return headers


def preflight_headers(allow: str, methods: str, asked: str | None) -> dict[str, str]:
    """The answer to a preflight for a path that takes `methods`: the headers asked for
    are allowed (the SDKs send many of their own, and a key can only be presented)."""
    headers = cors_headers(allow) | {
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    }
    if asked and _HEADER_NAMES.fullmatch(asked.strip()):
        headers["Access-Control-Allow-Headers"] = asked.strip()
    return headers
