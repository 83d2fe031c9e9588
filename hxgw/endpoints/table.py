"""The routes themselves: each endpoint, what it needs and where the upstream serves it."""

from __future__ import annotations

from hxgw.config.body_limits import Family
from hxgw.endpoints.endpoint import Endpoint, Guard, Listing, StreamEnd
from hxgw.upstream.affinity import Kind

_CHOICES = StreamEnd()
"""Chat's and a legacy completion's: `[DONE]`, or every choice's `finish_reason`."""
_RESPONSE_EVENTS = StreamEnd(
    (b"response.completed", b"response.incomplete", b"response.failed", b"error")
)

CHAT = Endpoint(
    name="chat",
    method="POST",
    upstream_path="/v1/chat/completions",
    mode="chat",
    choices=True,
    prompt="messages",
    stream_end=_CHOICES,
)
COMPLETIONS = Endpoint(
    name="completions",
    method="POST",
    upstream_path="/v1/completions",
    mode="completion",
    choices=True,
    prompt="prompt",
    stream_end=_CHOICES,
)
EMBEDDINGS = Endpoint(
    name="embeddings",
    method="POST",
    upstream_path="/v1/embeddings",
    mode="embedding",
    writes=False,
    prompt="input",
)
MODELS = Endpoint(name="models", method="GET", upstream_path="/v1/models", mode=None, billed=False)
MODEL = Endpoint(
    name="model", method="GET", upstream_path="/v1/models/{model}", mode=None, billed=False
)
"""One model or group, by id: `/v1/models/` and anything after it (ids may hold a `/`)."""
# Their own modes: OpenAI lets a moderation name no model, and the default group's
# chat model must not be sent one.
MODERATIONS = Endpoint(
    name="moderations",
    method="POST",
    upstream_path="/v1/moderations",
    mode="moderation",
    writes=False,
)
RERANK = Endpoint(
    name="rerank", method="POST", upstream_path="/v1/rerank", mode="rerank", writes=False
)
"""Cohere's rerank, as LiteLLM serves it (`/rerank` too, as Cohere clients call it)."""
# Anthropic's Messages API, which LiteLLM serves for every provider.
MESSAGES = Endpoint(
    name="messages",
    method="POST",
    upstream_path="/v1/messages",
    mode="chat",
    dialect="anthropic",
    prompt="messages",
    stream_end=StreamEnd((b"message_stop", b"error"), done=False),
)
COUNT_TOKENS = Endpoint(
    name="messages_count_tokens",
    method="POST",
    upstream_path="/v1/messages/count_tokens",
    mode="chat",
    dialect="anthropic",
    billed=False,
    prompt="messages",
)

# OpenAI's Responses API. Its state lives upstream, so every call on a response goes to
# the model that made it (hxgw.upstream.affinity).
RESPONSES = Endpoint(
    name="responses",
    method="POST",
    upstream_path="/v1/responses",
    mode="chat",
    prompt="input",
    stream_end=_RESPONSE_EVENTS,
)
RESPONSES_INPUT_TOKENS = Endpoint(
    name="responses_input_tokens",
    method="POST",
    upstream_path="/v1/responses/input_tokens",
    mode="chat",
    billed=False,
    prompt="input",
)
"""What a response's input would count: no tokens used, as Anthropic's count_tokens."""
RESPONSES_COMPACT = Endpoint(
    name="responses_compact", method="POST", upstream_path="/v1/responses/compact", mode="chat"
)
"""A conversation compacted by a model (its input, or the responses before it): billed
by the usage its answer holds."""


def _on_response(
    name: str, method: str, path: str, *, stream_end: StreamEnd | None = None
) -> Endpoint:
    """A route on one response: to the model that made it."""
    return Endpoint(
        name=name,
        method=method,
        upstream_path=path,
        mode=None,
        bound="model",
        billed=False,
        stream_end=stream_end,
    )


# With ?stream=true, a response's events again.
RESPONSE = _on_response(
    "responses_retrieve", "GET", "/v1/responses/{id}", stream_end=_RESPONSE_EVENTS
)
RESPONSE_DELETE = _on_response("responses_delete", "DELETE", "/v1/responses/{id}")
RESPONSE_CANCEL = _on_response("responses_cancel", "POST", "/v1/responses/{id}/cancel")
RESPONSE_INPUT_ITEMS = _on_response(
    "responses_input_items", "GET", "/v1/responses/{id}/input_items"
)


def _held(
    name: str,
    method: str,
    path: str,
    *,
    raw_answer: bool = False,
    family: Family = "json",
    listing: Listing | None = None,
    makes: bool = False,
) -> Endpoint:
    """A route on files or batches: to the upstream that holds them."""
    bound: Kind | None = "upstream" if "{id}" in path else None
    return Endpoint(
        name=name,
        method=method,
        upstream_path=path,
        mode=None,
        bound=bound,
        held=True,
        raw_answer=raw_answer,
        family=family,
        billed=False,
        listing=listing,
        makes=makes,
    )


FILES = _held("files", "POST", "/v1/files", family="files", makes=True)
"""An upload, streamed as the client sends it (hxgw.pipeline.file_upload)."""
FILES_LIST = _held(
    "files_list", "GET", "/v1/files", listing=Listing(most=10_000, default=10_000, ordered=True)
)
FILE = _held("files_retrieve", "GET", "/v1/files/{id}")
FILE_DELETE = _held("files_delete", "DELETE", "/v1/files/{id}")
FILE_CONTENT = _held("files_content", "GET", "/v1/files/{id}/content", raw_answer=True)
BATCHES = _held("batches", "POST", "/v1/batches", makes=True)
BATCHES_LIST = _held(
    "batches_list", "GET", "/v1/batches", listing=Listing(most=100, default=20, ordered=False)
)
BATCH = _held("batches_retrieve", "GET", "/v1/batches/{id}")
BATCH_CANCEL = _held("batches_cancel", "POST", "/v1/batches/{id}/cancel")

# Audio and images, as OpenAI serves them (and LiteLLM for every provider); the form
# uploads are streamed to the upstream, their answers relayed as they come.
TRANSCRIPTIONS = Endpoint(
    name="audio_transcriptions",
    method="POST",
    upstream_path="/v1/audio/transcriptions",
    mode="audio_transcription",
    family="audio",
    stream_end=StreamEnd((b"transcript.text.done", b"error")),
)
TRANSLATIONS = Endpoint(
    name="audio_translations",
    method="POST",
    upstream_path="/v1/audio/translations",
    mode="audio_transcription",
    family="audio",
)
SPEECH = Endpoint(
    name="audio_speech",
    method="POST",
    upstream_path="/v1/audio/speech",
    mode="audio_speech",
    stream_end=StreamEnd((b"speech.audio.done", b"error")),  # stream_format: sse
)
IMAGES = Endpoint(
    name="images_generations",
    method="POST",
    upstream_path="/v1/images/generations",
    mode="image_generation",
    copies=True,
    stream_end=StreamEnd((b"image_generation.completed", b"error")),
)
IMAGE_EDITS = Endpoint(
    name="images_edits",
    method="POST",
    upstream_path="/v1/images/edits",
    mode="image_generation",
    family="images",
    stream_end=StreamEnd((b"image_edit.completed", b"error")),
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
    RESPONSES,
    RESPONSES_INPUT_TOKENS,
    RESPONSES_COMPACT,
    FILES,
    FILES_LIST,
    BATCHES,
    BATCHES_LIST,
    TRANSCRIPTIONS,
    TRANSLATIONS,
    SPEECH,
    IMAGES,
    IMAGE_EDITS,
    IMAGE_VARIATIONS,
)

BY_ID: tuple[Endpoint, ...] = (
    RESPONSE,
    RESPONSE_DELETE,
    RESPONSE_CANCEL,
    RESPONSE_INPUT_ITEMS,
    FILE,
    FILE_DELETE,
    FILE_CONTENT,
    BATCH,
    BATCH_CANCEL,
)
"""The routes on one object, named by the id in their path."""


def _operator(path: str, guarded: Guard | None = None) -> Endpoint:
    return Endpoint(
        name=path.removeprefix("/"), method="GET", upstream_path="", mode=None, guarded=guarded
    )


# The operator's routes; each is named by its path without the slash.
OPERATOR: tuple[Endpoint, ...] = (
    _operator("/healthz"),
    _operator("/readyz"),
    _operator("/metrics", guarded="metrics"),
    _operator("/status", guarded="operator"),  # a browser's: HTTP Basic auth too
    _operator("/status.json", guarded="operator"),
    _operator("/openapi.json"),
)

UNROUTED = Endpoint(name="unrouted", method="*", upstream_path="", mode=None)
"""Any request no route takes: it is answered 404 or 405 by its own chain."""
UNROUTED_ANTHROPIC = Endpoint(
    name="unrouted_anthropic", method="*", upstream_path="", mode=None, dialect="anthropic"
)
"""The same on a path of Anthropic's API (a GET of /v1/messages, a POST of
/v1/messages/batches, which the gateway does not serve): its client reads Anthropic's
error shape."""
