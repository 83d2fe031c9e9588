"""What a benchmark run is made of: its settings (FULL, and QUICK for `--quick`), the
paths it measures and the request bodies it sends."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
import servers


@dataclass(frozen=True)
class Settings:
    quick: bool
    chat_seconds: int
    warmup_seconds: int
    concurrencies: tuple[int, ...]
    probe_seconds: int
    stream_chunks: int
    stream_interval: float
    streams: int
    stream_concurrency: int
    embed_seconds: int
    embed_connections: int
    slow_streams: int
    slow_chunks: int
    slow_interval: float
    slow_ramp: float
    routing_iterations: int


FULL = Settings(
    quick=False,
    chat_seconds=8,
    warmup_seconds=1,
    concurrencies=(1, 16, 64),
    probe_seconds=3,
    stream_chunks=50,
    stream_interval=0.005,
    streams=160,
    stream_concurrency=4,
    embed_seconds=5,
    embed_connections=4,
    slow_streams=1000,
    slow_chunks=20,
    slow_interval=0.5,
    slow_ramp=1.0,
    routing_iterations=20000,
)
QUICK = replace(
    FULL,
    quick=True,
    chat_seconds=2,
    probe_seconds=1,
    streams=40,
    embed_seconds=2,
    slow_chunks=6,
    routing_iterations=3000,
)
"""FULL, shorter: what `--quick` changes, and only that."""

CHAT_PATH = "/v1/chat/completions"
EMBED_PATH = "/v1/embeddings"


def chat_body(**extra: Any) -> bytes:
    body = {
        "model": servers.GROUP,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Return exactly the text: HX-OK"},
        ],
        "max_tokens": 16,
        **extra,
    }
    return orjson.dumps(body)


def embed_body(size: int = 1_000_000) -> bytes:
    """An embeddings batch of ~`size` bytes: 1,000 inputs of ~1 kB each."""
    words = "the quick brown fox jumps over the lazy dog while the gateway copies bytes "
    item = (words * (size // 1000 // len(words) + 1))[: size // 1000 - 4]
    return orjson.dumps({"model": servers.GROUP, "input": [item] * 1000})


def case_meta(s: Settings, embed_size: int) -> dict[str, Any]:
    """What the stream, embeddings and slow-stream rows measured, for the results' meta."""
    return {
        "stream": {
            "chunks": s.stream_chunks,
            "interval_ms": s.stream_interval * 1000,
            "streams": s.streams,
            "concurrency": s.stream_concurrency,
        },
        "embeddings": {"body_mb": embed_size / 1e6, "connections": s.embed_connections},
        "slow_streams": {
            "streams": s.slow_streams,
            "chunks": s.slow_chunks,
            "interval_s": s.slow_interval,
            "ramp_s": s.slow_ramp,
        },
    }
