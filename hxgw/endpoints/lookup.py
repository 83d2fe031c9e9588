"""From a request's method and path to the endpoint that serves it, and back: the paths
each route answers, and the methods a path takes."""

from __future__ import annotations

from collections.abc import Mapping

from hxgw.endpoints.endpoint import Endpoint
from hxgw.endpoints.table import (
    BY_ID,
    MODEL,
    MODELS,
    OPERATOR,
    PROXIED,
    UNROUTED,
    UNROUTED_ANTHROPIC,
)

MODEL_PREFIXES = ("/v1/models/", "/models/")
FILES_PREFIXES = ("/v1/files", "/files")
"""OpenAI's files API, whose paths Anthropic's Files API has too."""
_MODEL_METHODS = frozenset(("GET", "HEAD"))


def endpoint_for(method: str, path: str) -> Endpoint:
    """The endpoint that serves `method path`: the fixed table, then the one route
    with a parameter (only looked at when the table has no answer)."""
    endpoint = ROUTES.get((method, path))
    if endpoint is not None:
        return endpoint
    if method in _MODEL_METHODS and _names_a_model(path):
        return MODEL
    for endpoint in BY_ID:
        if endpoint.method == method and id_in_path(endpoint, path) is not None:
            return endpoint
    anthropic = path in _ANTHROPIC_PATHS or path.startswith(_ANTHROPIC_PREFIXES)
    return UNROUTED_ANTHROPIC if anthropic else UNROUTED


def _names_a_model(path: str) -> bool:
    return path.startswith(MODEL_PREFIXES) and not path.endswith("/models/")


def id_in_path(endpoint: Endpoint, path: str) -> str | None:
    """The id in `path` where `endpoint` takes one (`{id}` in its upstream path), with or
    without the /v1 prefix; None when the path is not one of the endpoint's."""
    before, _, after = endpoint.upstream_path.partition("{id}")
    for prefix in (before, before.removeprefix("/v1")):
        if path.startswith(prefix) and path.endswith(after):
            ident = path[len(prefix) : len(path) - len(after)]
            if ident and "/" not in ident:
                return ident
    return None


def allowed_methods(path: str) -> str | None:
    """The methods `path` takes, for a 405's Allow header; None for a path no route has."""
    fixed = ALLOWED.get(path)
    if fixed is not None:
        return fixed
    if _names_a_model(path):
        return ", ".join(sorted(_MODEL_METHODS))
    methods = sorted({e.method for e in BY_ID if id_in_path(e, path) is not None})
    return ", ".join(methods) or None


def client_paths(endpoint: Endpoint) -> tuple[str, ...]:
    """Clients may call each API route with or without the /v1 prefix, as with OpenAI's
    SDKs; the operator's routes have one path each."""
    if not endpoint.upstream_path:
        return (f"/{endpoint.name}",)
    return endpoint.upstream_path, endpoint.upstream_path.removeprefix("/v1")


def _table() -> dict[tuple[str, str], Endpoint]:
    table = {}
    for endpoint in (*PROXIED, *OPERATOR):
        for path in client_paths(endpoint):
            table[endpoint.method, path] = endpoint
            if endpoint in OPERATOR or endpoint is MODELS:
                # What a load balancer's probe or a monitor may send: the gateway's own
                # answers take it. A proxied GET does not: LiteLLM answers HEAD 405.
                table["HEAD", path] = endpoint
    return table


ROUTES: Mapping[tuple[str, str], Endpoint] = _table()
"""(method, path) -> the endpoint that serves it."""

ALLOWED: Mapping[str, str] = {
    path: ", ".join(sorted(m for m, p in ROUTES if p == path)) for _, path in ROUTES
}
"""path -> the methods it takes, for a 405's Allow header."""

_ANTHROPIC_PATHS = frozenset(
    path
    for endpoint in PROXIED
    if endpoint.dialect == "anthropic"
    for path in client_paths(endpoint)
)
_ANTHROPIC_PREFIXES = ("/v1/messages/", "/messages/")


def anthropic_client(endpoint: Endpoint, path: str, says_version: bool) -> bool:
    """Whether a request's client is Anthropic's: on its routes, and on the models and
    files paths, which both SDKs call, and on a path no route takes (`/v1/complete`, its
    SDK's legacy completions), when the request says `anthropic-version` (`says_version`),
    which only its SDK sends. By path, not by route: a wrong method or an empty id there is
    that client's mistake too. Its answers carry `request-id`, its errors are in its shape."""
    if endpoint.dialect == "anthropic":
        return True
    return says_version and (
        endpoint is UNROUTED or path in _MODELS_PATHS or path.startswith(_SHARED_PREFIXES)
    )


_MODELS_PATHS = frozenset(client_paths(MODELS))
_SHARED_PREFIXES = (*MODEL_PREFIXES, *FILES_PREFIXES)
