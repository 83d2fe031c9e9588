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

    __slots__ = ("_kinds",)

    def __init__(self) -> None:
        self._kinds: tuple[dict[int, float], dict[int, float]] = ({}, {})  # plain, timed

    def __bool__(self) -> bool:
        return bool(self._kinds[0] or self._kinds[1])

    def add(self, token: int, now: float, timed: bool) -> None:
        self._kinds[timed][token] = now

    def pop(self, token: int) -> None:
        """The request's first byte came, or it ended without one."""
        plain, timed = self._kinds
        if plain.pop(token, None) is None:
            timed.pop(token, None)

    def restart(self, token: int, now: float) -> None:
        """The request's wait starts over (at its turn at its upstream's cap)."""
        for waiting in self._kinds:
            if token in waiting:
                waiting[token] = now

    def stalled(self, now: float, limit: Limit, answered: int) -> bool:
        """Whether the oldest request of either kind has waited past its kind's limit,
        with no request sent after it answered since (`answered`: the latest-sent one
        that had its first byte): the oldest is found without a look at the others."""
        for timed, waiting in enumerate(self._kinds):
            if waiting:
                token, since = next(iter(waiting.items()))
                if answered < token and now - since > limit(bool(timed)):
                    return True
        return False

    def all_past(self, now: float, limit: Limit) -> bool:
        """Whether every request waiting has waited past its kind's limit (its newest)."""
        return all(
            now - next(reversed(waiting.values())) > limit(bool(timed))
            for timed, waiting in enumerate(self._kinds)
            if waiting
        )
