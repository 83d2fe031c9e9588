"""Whose fault a 500 was: the model's, or the request's. Settled once the tries are over.

A 500 is as a rule the model's failure, held against its health, but LiteLLM answers
some malformed requests with one too ("Invalid tool choice, tool_choice=5 ...
Received Model Group=m-beta"). Such a request fails over to every candidate, and
counted against each, a few of them from one client opened every model's circuit,
refusing everyone else. `check_shape` refuses the malformed fields known; this is the
rule for the others.

So the verdict on a 500 waits for the request's end. When every candidate tried answered
it, all with the same message once each model's own name is taken out, the request was at
fault and no model is blamed. When another candidate served it, or something else failed
too, or the messages differ, each 500 counts as the failure it was. An upstream broken
for every model alike (one LiteLLM whose database is down) is then blamed on no model:
no circuit could have helped, as every candidate fails the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hxgw.config import Model
from hxgw.pipeline.failover.failures import Failure
from hxgw.routing.health import ModelHealth

WAITS_FOR_VERDICT = 500
"""The status whose blame waits: what LiteLLM makes of an exception it did not expect."""


@dataclass(slots=True)
class Held:
    health: ModelHealth
    token: int
    model: Model
    said: str | None = None
    """The answer's message with the model's own names taken out; None until it is read
    (or when it cannot be)."""

    def heard(self, message: str | None) -> None:
        if message:
            model = self.model
            self.said = message.replace(model.upstream_model, "<model>").replace(
                model.name, "<model>"
            )


class Blame:
    """The 500s of one request's candidates, held until `settle`."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held: list[Held] = []

    def hold(self, health: ModelHealth, token: int, model: Model) -> Held:
        """Hold a 500's verdict; its message is `heard` once read."""
        health.answered(token)  # it answered: not stalled while the verdict waits
        held = Held(health, token, model)
        self.held.append(held)
        return held

    def settle(self, failed: list[Failure], served: bool) -> None:
        """The verdict on each 500 held, once the request was served or every try failed
        (the `failed` list)."""
        held, self.held = self.held, []
        if not held:
            return
        alike = held[0].said is not None and len({h.said for h in held}) == 1
        if not served and alike and len(held) == len(failed) > 1:
            for entry in held:
                entry.health.finished_other(entry.token)
            return
        now = time.monotonic()
        for entry in held:
            entry.health.failed(now, token=entry.token)
