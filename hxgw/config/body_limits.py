"""The limits on what one client may send and hold: request body sizes per route
family, and the connection limits of `gateway.yaml`'s `limits` section.

A JSON body is held whole (failover sends it again), so its limit stays small.
Uploads are multipart forms streamed to the upstream, held whole only when small, so
their limits are the upstream API's own: OpenAI takes audio files of up to
25 MB, images of up to 50 MB, and files of up to 512 MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["json", "audio", "images", "files"]
"""A route family, by the body its routes take: a JSON body, or an upload of audio,
images or files (multipart/form-data)."""

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FamilyLimit:
    key: str
    """The setting under `limits` in gateway.yaml."""
    what: str
    """The bodies it limits, as a refusal names them."""


FAMILY_LIMITS: dict[Family, FamilyLimit] = {
    "json": FamilyLimit("max_body_bytes", "JSON bodies"),
    "audio": FamilyLimit("max_audio_bytes", "audio uploads"),
    "images": FamilyLimit("max_image_bytes", "image uploads"),
    "files": FamilyLimit("max_file_bytes", "file uploads"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_body_bytes: int = 32 * MiB  # Anthropic's own limit: an agent's screenshots fill it
    """A JSON request body (chat, embeddings, speech, image generation, ...)."""
    max_audio_bytes: int = 26 * MiB
    """A transcription or translation form: OpenAI's 25 MB file and the other fields."""
    max_image_bytes: int = 64 * MiB
    """An image edit or variation form: its images (OpenAI: under 50 MB each) and mask."""
    max_file_bytes: int = 512 * MiB
    """A file upload form (OpenAI: files of up to 512 MB)."""
    upstream_connections: int | None = None
    """The upstream requests this process may have at once, shared equally by the
    upstreams without their own `max_concurrent`; None: sized from the process's
    descriptor limit (see hxgw.lifecycle.capacity)."""
    client_idle_timeout: float = 60.0
    """A connection that has not sent a complete request (idle keep-alive, or headers
    trickling in, slowloris style) for this long is closed; an upload that sends
    nothing for this long is refused with 408."""
    body_timeout: float = 60.0
    """The most a JSON request body may take to arrive, whole: past it, 408. (An upload
    is bounded by its size limit and the idle timeout instead.)"""
    connections_per_address: int = 10_000
    """Concurrent connections from one client address; past it new ones are refused.
    A trusted proxy (auth.trusted_proxies) carries many clients and is never capped."""

    def body_limit(self, family: Family) -> int:
        """The most bytes a request body of the family may have."""
        limit: int = getattr(self, FAMILY_LIMITS[family].key)
        return limit
