"""Bearer-key authentication against the configured client keys."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

import structlog

from hxgw.config import ClientKey, key_digest
from hxgw.errors import AddressLockedOut, Unauthorized, Unavailable
from hxgw.keys.book import StoredKeys
from hxgw.keys.guard import Verdict, client_address
from hxgw.keys.store import SECRET_PREFIX
from hxgw.pipeline.context import Next, RequestContext
from hxgw.state import GatewayState

log = structlog.get_logger("hxgw.auth")


def authenticate(ctx: RequestContext, call_next: Next) -> Awaitable[None]:
    """Reads the Authorization header (or x-api-key); writes ctx.key (the named key, never
    the secret).

    The key may come as `x-api-key` too, as the anthropic SDK sends it; with both, the
    bearer one is read: Claude Code sends a gateway's token that way
    (`ANTHROPIC_AUTH_TOKEN`), beside an `ANTHROPIC_API_KEY` that may be Anthropic's own.
    Keys are held as SHA-256 digests and looked up by digest: how long a probe takes
    tells nothing of how much of a key matched (a near miss's digest shares nothing with
    the key's, so no compare of the secrets is needed). The config's keys come first,
    then those `hxgw keys` made. The bad-key guard decides what a key from a guessing
    address gets.
    """
    header = ctx.exchange.sole_header("Authorization") or ""
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        # The anthropic SDK sends its key as x-api-key, to its models routes too.
        scheme, presented = "bearer", ctx.exchange.sole_header("x-api-key") or ""
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        if header.strip().lower() == "bearer":  # `Bearer $KEY` of a variable left empty
            raise Unauthorized("the Authorization header has no key after 'Bearer'")
        if header:  # a key without its scheme, or another scheme
            raise Unauthorized("the Authorization header must read 'Bearer <key>'")
        if ctx.speaks_anthropic():
            raise Unauthorized(
                "missing key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'"
            )
        raise Unauthorized("missing bearer key: send 'Authorization: Bearer <key>'")
    digest = key_digest(presented)
    key = ctx.state.keys_by_digest.get(digest)
    stored = ctx.state.runtime.stored_keys
    if key is None and stored is not None:
        key = stored.by_digest.get(digest)
        if key is None and digest in stored.ended:
            _refuse_ended(*stored.ended[digest])
        if key is None and unread_yet(stored, digest, presented):
            # Perhaps made by `hxgw keys` since the store was last read: wait for the
            # next read (a second at most) rather than refuse it, and count it as a bad
            # key only if that read does not have it either.
            return _after_next_read(ctx, stored, digest, call_next)
    _admit(ctx, key, digest)
    return call_next(ctx)


async def _after_next_read(
    ctx: RequestContext, stored: StoredKeys, digest: bytes, call_next: Next
) -> None:
    await stored.next_read()
    key = stored.by_digest.get(digest)
    if key is None and digest in stored.ended:
        # A secret that read made and ended at once (rotated past a key the keys file
        # hides, revoked since): told why, as one the gateway knew before.
        _refuse_ended(*stored.ended[digest])
    if key is None and not stored.current():
        # Not known, and the store could not say: no bad key, and worth a retry soon.
        raise Unavailable(
            "the key store cannot be read just now, so this key cannot be checked; "
            "try again shortly",
            retry_after=1,
        )
    _admit(ctx, key, digest)
    await call_next(ctx)


def unread_yet(stored: StoredKeys, digest: bytes, presented: str) -> bool:
    """Whether `presented` may be a key `hxgw keys` made since the store was last read:
    one of the stored keys' prefix that the gateway's copy does not have."""
    return presented.startswith(SECRET_PREFIX) and digest not in stored.by_digest


def unexpired(key: ClientKey | None) -> ClientKey | None:
    """`key`, or None once it has expired (or is a rotated secret past its grace)."""
    if key is not None and key.expired(time.time()):
        return None
    return key


def _admit(ctx: RequestContext, key: ClientKey | None, digest: bytes) -> None:
    """Set ctx.key, or raise what the guard says a bad key gets."""
    if key is not None and key.expired(time.time()):
        _refuse_ended(key.name, "has expired")
    valid = key is not None
    refusal = "invalid API key"
    if not valid and _both_keys(ctx):
        refusal += " (the bearer key: with both headers given, x-api-key is not read)"
    guard_key(ctx.state, ctx.exchange.remote, ctx.exchange.joined_header, digest, valid, refusal)
    ctx.key = key


def _both_keys(ctx: RequestContext) -> bool:
    """Whether the request sent a bearer key and an `x-api-key`, which was not read."""
    bearer = (ctx.exchange.sole_header("Authorization") or "")[:7].lower() == "bearer "
    return bearer and bool(ctx.exchange.sole_header("x-api-key"))


def _refuse_ended(name: str, ended: str) -> NoReturn:
    """A key that once opened the gateway: its holder is told why, and the log names it.
    It is no guess (a guesser cannot come by such a key), so the bad-key guard does not
    count it: an old client retrying it must not lock out the address's new key."""
    log.info("refused a key that " + ended, key=name)
    raise Unauthorized(f"this API key {ended}")


def guard_key(
    state: GatewayState,
    peer: str | None,
    header: Callable[[str], str | None],
    digest: bytes,
    valid: bool,
    refusal: str = "invalid API key",
) -> None:
    """Raise unless the bad-key guard lets this key through: 401 for a bad key (saying
    `refusal`), 429 while the client's address is locked out (for every key but those
    known to work there). `header` gives a header's lines joined: a proxy may add its
    X-Forwarded-For as a line of its own (HAProxy does), after the client's made-up one."""
    policy, guard = state.config.bad_keys, state.runtime.guard
    address = client_address(
        peer, header("X-Forwarded-For") if policy.trusted_proxies else None, policy.trusted_proxies
    )
    now = time.monotonic()
    before = guard.lockouts
    verdict = guard.judge(address, digest, valid, now, policy)
    if verdict is Verdict.OK:
        return
    if guard.lockouts != before:
        log.warning(
            "too many bad keys; refusing the address for a while",
            address=address,
            failures=policy.max_failures,
            lockout_seconds=policy.lockout,
        )
    if verdict is Verdict.LOCKED:
        # Said whichever key came, a right guess too; that keys used from here before
        # still work tells the client with a stale key which one it is.
        wait = max(1, math.ceil(guard.locked_for(address, now)))
        raise AddressLockedOut(
            f"too many invalid API keys from this address: every key is refused for {wait}s"
            " more, but those already used from here",
            retry_after=wait,
        )
    raise Unauthorized(refusal)
