"""The requests a model has not sent a first byte for yet, by kind: what tells a model
that stopped answering (hxgw.routing.health) from one that answers slowly.

A stream's first byte comes as soon as the model starts; a plain answer's is its last.
Each kind is judged against its own usual wait, so that a minute-long plain answer
neither looks like a stall itself nor hides a stream that never starts."""

from __future__ import annotations

from collections.abc import Callable

Limit = Callable[[bool], float]
"""How long a request of a kind (timed: a stream's, or an answer that comes at once) may
wait for its first byte before the model seems stalled."""


class Waiting:
    """The requests waiting, plain ones and timed ones apart, each by token in the order
    sent (a dict keeps it): since when each waits."""

    __slots__ = ("plain", "timed")

    def __init__(self) -> None:
        self.plain: dict[int, float] = {}
        self.timed: dict[int, float] = {}

    def add(self, token: int, now: float, timed: bool) -> None:
        (self.timed if timed else self.plain)[token] = now

    def pop(self, token: int) -> None:
        """The request's first byte came, or it ended without one."""
        if self.plain.pop(token, None) is None:
            self.timed.pop(token, None)

    def restart(self, token: int, now: float) -> None:
        """The request's wait starts over (at its turn at its upstream's cap)."""
        for requests in (self.plain, self.timed):
            if token in requests:
                requests[token] = now

    def stalled(self, now: float, limit: Limit, answered: int) -> bool:
        """Whether the oldest request of either kind has waited past its kind's limit,
        with no request sent after it answered since (`answered`: the latest-sent one
        that had its first byte). Written out for each kind: it is asked for each
        candidate of every request while any waits."""
        if self.plain:
            token, since = next(iter(self.plain.items()))
            if answered < token and now - since > limit(False):
                return True
        if self.timed:
            token, since = next(iter(self.timed.items()))
            if answered < token and now - since > limit(True):
                return True
        return False

    def probe_due(self, now: float, limit: Limit, answered: int) -> bool:
        """Whether a stalled model may take one more request: the newest request of each
        stalled kind has waited past its limit, so one at a time goes. A kind that is not
        stalled (a long plain answer, its first byte its last) keeps none out."""
        for timed, requests in ((False, self.plain), (True, self.timed)):
            if not requests:
                continue
            most = limit(timed)
            token, since = next(iter(requests.items()))
            stalled = answered < token and now - since > most
            if stalled and now - next(reversed(requests.values())) <= most:
                return False
        return True
