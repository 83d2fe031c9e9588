"""Bearer-key authentication against the configured client keys."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from hxgw.errors import RateLimited, Unauthorized
from hxgw.pipeline.context import RequestContext
from hxgw.types import Next

log = structlog.get_logger("hxgw.auth")


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 where the interpreter has it (`_sha2` from 3.12, `_sha256`
    before), else hashlib's. The digests are the same; hashlib's is OpenSSL's, whose EVP
    machinery is a long way through code nothing else on a request touches: measured with
    `make bench-ab`, the builtin one costs 2.8% less CPU per request."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


_SHA256 = _builtin_sha256()


def authenticate(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads the Authorization header; writes ctx.key (the named key, never the secret).

    Keys are held as SHA-256 digests: the lookup is by digest, so neither the
    dict probe nor the final compare_digest leaks how much of a key matched.
    """
    guard, policy = ctx.state.runtime.guard, ctx.state.config.bad_keys
    address = ctx.exchange.remote or "-"
    now = time.monotonic()
    wait = guard.locked_for(address, now)
    if wait:
        raise RateLimited(
            "too many bad keys from this address; try again later", retry_after=math.ceil(wait)
        )
    header = ctx.exchange.header("Authorization") or ""
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("missing bearer key: send 'Authorization: Bearer <key>'")
    digest = _SHA256(presented.strip().encode("utf-8", "surrogateescape")).digest()
    key = ctx.state.keys_by_digest.get(digest)
    if key is None or not hmac.compare_digest(key.digest, digest):
        if guard.failed(address, now, policy.max_failures, policy.window, policy.lockout):
            log.warning(
                "too many bad keys; refusing the address for a while",
                address=address,
                failures=policy.max_failures,
                lockout_seconds=policy.lockout,
            )
        raise Unauthorized("invalid API key")
    ctx.key = key
    return call_next(ctx)
