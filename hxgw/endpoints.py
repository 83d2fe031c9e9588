"""The OpenAI surface the gateway serves, and nothing else.

Upstream paths come from this table, never from the client's path, so no
request can reach an upstream route (LiteLLM's /key/*, /user/*, ...) that is
not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hxgw.config import Mode


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    name: str
    method: str
    upstream_path: str
    mode: Mode | None
    """The model mode this endpoint needs; None for endpoints that take no model."""


CHAT = Endpoint(name="chat", method="POST", upstream_path="/v1/chat/completions", mode="chat")
COMPLETIONS = Endpoint(
    name="completions", method="POST", upstream_path="/v1/completions", mode="completion"
)
EMBEDDINGS = Endpoint(
    name="embeddings", method="POST", upstream_path="/v1/embeddings", mode="embedding"
)
MODELS = Endpoint(name="models", method="GET", upstream_path="/v1/models", mode=None)

PROXIED: tuple[Endpoint, ...] = (CHAT, COMPLETIONS, EMBEDDINGS, MODELS)


def client_paths(endpoint: Endpoint) -> tuple[str, str]:
    """Clients may call each route with or without the /v1 prefix, as with OpenAI's SDKs."""
    return endpoint.upstream_path, endpoint.upstream_path.removeprefix("/v1")
