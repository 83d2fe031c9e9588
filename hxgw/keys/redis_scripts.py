"""The Lua script of the Redis limiter (`limits.lua`, beside this module): one key's
decisions and corrections, in order.

Each operation is `hxgw.keys.window.KeyState.reserve` or `.reconcile` written for
Redis, step for step, so that the three backends decide alike (the tests run the
same cases against each); two are Redis's own, for what only a shared server meets: a
release (a reservation whose batch timed out) and a seed (a spend it lost). A script
runs atomically on the server, and it runs its operations one after the other: N gateways deciding for one key at once are
served one after the other, and enforce one limit. A correction whose batch failed
is sent again as `C`: a Redis paused (`CLIENT PAUSE`, as a failover pauses writes)
drops the waiting commands of a connection the gateway closed, so it never ran, and its
slot would be held for its whole lease; a stalled one ran it when it resumed, so it is
applied only if its reservation is still open. One call carries what one
gateway had waiting for that key (`hxgw.keys.redis_batch`): the key's state is
read once, decided on for each operation, and written back once.

One key's state is five Redis keys with its name as the hash tag (one slot in a
cluster):

- `log` (sorted set, request id -> time) and `tok` (hash, request id -> tokens);
- `open` (sorted set, request id -> lease expiry);
- `st` (hash): budget period `p` and its length `ps`, spend `s`, reserved cost `r`,
  window tokens `t`, `c:<id>` the estimated cost of each open reservation; `b` when
  the state began (the earliest `now` of the call that found none: a correction for a
  reservation made before was never charged here, where one made since and no longer
  open was charged its estimate); `u` while the spend is awaited from a ledger (0, or
  the end of the hold of the gateway reading it); `g` the soonest expiry in `gone`;
- `gone` (sorted set): tombstones of released reservations that were not open, id ->
  the end of their lease, so that one that comes after its release is not made; and
  `a:<id>` of each spend added from an outage, so that one sent again is not added
  twice (dated by when its call was sent, not by the spend); read only while `g` says
  there are some.

Every call sets the first four to expire a window after the longest of window, lease
and budget period: an idle key's state goes away on its own (`gone` a lease after its
newest tombstone).

Arguments: window, concurrency retry, lease, when the call was sent (the gateway's
clock: a tombstone's time), then one operation per argument,
its fields separated by spaces (one string each: a few arguments to encode and
parse instead of a dozen per operation):

    r now id est_tokens est_cost rpm tpm max_parallel budget period_s   (-1: no limit)
    c now id actual_tokens actual_cost est_cost period_s reserved_at
    C ...                     (the same, sent again: applied only while still open)
    x now id                                             (a release: `release` below)
    s now spent period_s period                          (the ledger's spend: `seed`)
    a now id spent period_s period        (spent while Redis was away, once: `add`)

The reply is one string, a line per operation: for a reservation
`refused retry requests tokens newest parallel spent reserved said` (`-` for no
refusal, or no newest request). `said` is `-`, or for a key with a budget whose spend is
awaited (its state was new: `u` in `st`, until a seed comes) `new` to the first
reservation (made or refused as usual: the gateway reads the spend back from its ledger,
sends it and asks again) and `wait` to those within `hold` seconds after it (refused,
not made). For every other operation `ok`. Numbers go both ways as
"%.17g" strings: Redis would write a Lua number with 14 digits, which is a
tenth of a millisecond at today's epoch.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources

from hxgw.keys.resp import Arg, Reply, ReplyError, RespConnection

BATCH = importlib.resources.files("hxgw.keys").joinpath("limits.lua").read_text()
"""The script, read once: a Lua file of its own, as a reader of Lua expects it."""
BATCH_SHA = hashlib.sha1(BATCH.encode(), usedforsecurity=False).hexdigest()
"""What EVALSHA calls it by; the server computes the same digest when it loads it."""


async def script_texts(
    connection: RespConnection | None,
    commands: list[tuple[Arg, ...]],
    replies: list[asyncio.Future[Reply]],
) -> list[bytes]:
    """The replies to a batch's script calls (`commands`, sent on `connection`). NOSCRIPT
    (the script flushed from a live server) means that call did not run: the script is
    loaded and the call sent again."""
    texts: list[bytes | None] = []
    for reply in replies:
        try:
            texts.append(bytes_reply(await reply))
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            texts.append(None)
    if None in texts:
        if connection is None:
            raise ConnectionError("the Redis connection was closed")
        again = [command for command, text in zip(commands, texts, strict=True) if text is None]
        loaded, *resent = connection.send([("SCRIPT", "LOAD", BATCH), *again])
        await loaded
        answers = iter(resent)
        texts = [bytes_reply(await next(answers)) if text is None else text for text in texts]
    return [text for text in texts if text is not None]


def bytes_reply(reply: object) -> bytes:
    """A script's reply, which is one string."""
    if not isinstance(reply, bytes):
        raise ReplyError(f"unexpected reply from the limits script: {reply!r}")
    return reply
