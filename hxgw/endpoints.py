"""Every route the gateway serves: the OpenAI surface it proxies and the operator's own.

Upstream paths come from this table, never from the client's path, so no
request can reach an upstream route (LiteLLM's /key/*, /user/*, ...) that is
not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from hxgw.config import Mode
from hxgw.config.body_limits import Family

Dialect = Literal["openai", "anthropic"]
"""Whose API a route speaks: the key header it takes and the shape of its errors."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    name: str
    method: str
    upstream_path: str
    """Where the upstream serves it; empty for the gateway's own routes."""
    mode: Mode | None
    """The model mode this endpoint needs; None for endpoints that take no model."""
    dialect: Dialect = "openai"
    family: Family = "json"
    """Its body: JSON, held whole, or an upload (multipart/form-data) of audio, images or
    files, streamed; each family has its size limit (`limits` in gateway.yaml)."""


CHAT = Endpoint(name="chat", method="POST", upstream_path="/v1/chat/completions", mode="chat")
COMPLETIONS = Endpoint(
    name="completions", method="POST", upstream_path="/v1/completions", mode="completion"
)
EMBEDDINGS = Endpoint(
    name="embeddings", method="POST", upstream_path="/v1/embeddings", mode="embedding"
)
MODELS = Endpoint(name="models", method="GET", upstream_path="/v1/models", mode=None)
MODEL = Endpoint(name="model", method="GET", upstream_path="/v1/models/{model}", mode=None)
"""One model or group, by id: `/v1/models/` and anything after it (ids may hold a `/`)."""
# Mode None: a moderation or rerank model is any model of the group the request names.
MODERATIONS = Endpoint(
    name="moderations", method="POST", upstream_path="/v1/moderations", mode=None
)
RERANK = Endpoint(name="rerank", method="POST", upstream_path="/v1/rerank", mode=None)
"""Cohere's rerank, as LiteLLM serves it (`/rerank` too, as Cohere clients call it)."""
# Anthropic's Messages API, which LiteLLM serves for every provider.
MESSAGES = Endpoint(
    name="messages", method="POST", upstream_path="/v1/messages", mode="chat", dialect="anthropic"
)
COUNT_TOKENS = Endpoint(
    name="messages_count_tokens",
    method="POST",
    upstream_path="/v1/messages/count_tokens",
    mode="chat",
    dialect="anthropic",
)

# Audio and images, as OpenAI serves them (and LiteLLM for every provider); the form
# uploads are streamed to the upstream, their answers relayed as they come.
TRANSCRIPTIONS = Endpoint(
    name="audio_transcriptions",
    method="POST",
    upstream_path="/v1/audio/transcriptions",
    mode="audio_transcription",
    family="audio",
)
TRANSLATIONS = Endpoint(
    name="audio_translations",
    method="POST",
    upstream_path="/v1/audio/translations",
    mode="audio_transcription",
    family="audio",
)
SPEECH = Endpoint(
    name="audio_speech", method="POST", upstream_path="/v1/audio/speech", mode="audio_speech"
)
IMAGES = Endpoint(
    name="images_generations",
    method="POST",
    upstream_path="/v1/images/generations",
    mode="image_generation",
)
IMAGE_EDITS = Endpoint(
    name="images_edits",
    method="POST",
    upstream_path="/v1/images/edits",
    mode="image_generation",
    family="images",
)
IMAGE_VARIATIONS = Endpoint(
    name="images_variations",
    method="POST",
    upstream_path="/v1/images/variations",
    mode="image_generation",
    family="images",
)

PROXIED: tuple[Endpoint, ...] = (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MODELS,
    MODERATIONS,
    RERANK,
    MESSAGES,
    COUNT_TOKENS,
    TRANSCRIPTIONS,
    TRANSLATIONS,
    SPEECH,
    IMAGES,
    IMAGE_EDITS,
    IMAGE_VARIATIONS,
)


def _operator(path: str) -> Endpoint:
    return Endpoint(name=path.removeprefix("/"), method="GET", upstream_path="", mode=None)


# The operator's routes; each is named by its path without the slash.
OPERATOR: tuple[Endpoint, ...] = tuple(
    _operator(path)
    for path in ("/healthz", "/readyz", "/metrics", "/status", "/status.json", "/openapi.json")
)

UNROUTED = Endpoint(name="unrouted", method="*", upstream_path="", mode=None)
"""Any request no route takes: it is answered 404 or 405 by its own chain."""
MODEL_PREFIXES = ("/v1/models/", "/models/")


def endpoint_for(method: str, path: str) -> Endpoint:
    """The endpoint that serves `method path`: the fixed table, then the one route
    with a parameter (only looked at when the table has no answer)."""
    endpoint = ROUTES.get((method, path))
    if endpoint is not None:
        return endpoint
    if method == "GET" and path.startswith(MODEL_PREFIXES) and not path.endswith("/models/"):
        return MODEL
    return UNROUTED


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
            if endpoint in OPERATOR:
                table["HEAD", path] = endpoint  # what a load balancer's probe may send
    return table


ROUTES: Mapping[tuple[str, str], Endpoint] = _table()
"""(method, path) -> the endpoint that serves it."""

ALLOWED: Mapping[str, str] = {
    path: ", ".join(sorted(m for m, p in ROUTES if p == path)) for _, path in ROUTES
}
"""path -> the methods it takes, for a 405's Allow header."""
