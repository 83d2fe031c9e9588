"""In what order a request's candidate models are tried, and why.

A route (`routes`) gives the candidates: the group's own models, then the
last-resort ones of `failover_order`. The group's strategy orders its own;
models the prompt does not fit, and models whose circuit is open, are left out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hxgw.config import Config, Model
from hxgw.errors import BadRequest
from hxgw.routing.learned.classifier import TaskClassifier
from hxgw.routing.learned.prompt import prompt_text
from hxgw.routing.prompt_size import asked_answer, measure
from hxgw.routing.scoring import Ranking, Scored, rank
from hxgw.routing.strategies import ORDERS, Memory, explore


@dataclass(frozen=True, slots=True)
class Route:
    group: str | None
    pinned: bool
    candidates: tuple[Model, ...]
    own: int = 1
    """How many of the candidates are the group's own; the rest come from failover_order."""
    turns: str = ""
    """What round-robin and latency count their turns under: the group and the endpoint's
    mode, since a group may hold models of several modes, and an embedding request taking
    a turn would move the chat models' (alternating, one chat model got them all)."""
    classified: bool = True
    """Whether ml-based-routing asks the task classifier about the request: not for an
    embedding, whose input is text to turn into numbers, no task for a model (the header
    had said `task=chat` of it)."""
    limited: bool = field(init=False)
    """Whether a candidate has a `max_context`: asked once here, not on every request."""
    fixed: Decision | None = None
    """The decision, when it can only come out one way while every candidate is healthy
    (the `failover` strategy, no `max_context`): made once with the route, not per request."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "limited", any(m.max_context for m in self.candidates))


class Decision(NamedTuple):
    """The order candidates will be tried in, and why. A NamedTuple, not a frozen
    dataclass: one is built per request, several times faster."""

    strategy: str
    candidates: tuple[Model, ...]
    task: dict[str, float] | None = None
    ranking: Ranking | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    route_header: str = ""
    """`header()`, worked out in advance for a decision made once and reused."""

    @property
    def scored(self) -> tuple[Scored, ...]:
        """ml-based-routing's scores and their terms, best first (built when asked)."""
        return self.ranking.scored() if self.ranking else ()

    def header(self) -> str:
        """The X-HX-Route value: strategy, detected task, chosen model, runner-up, and the
        models left out (an open circuit, a stall, a prompt too long), which only the
        operator could tell before, from the model's own log lines."""
        if self.route_header:
            return self.route_header
        parts = [f"strategy={self.strategy}"]
        if self.task:
            label = max(self.task, key=self.task.__getitem__)
            parts.append(f"task={label}; p={self.task[label]:.2f}")
        parts.append(f"chosen={self.candidates[0].name}")
        if len(self.candidates) > 1:
            parts.append(f"runner_up={self.candidates[1].name}")
        if self.skipped:
            parts.append("skipped=" + ",".join(name for name, _ in self.skipped))
        return "; ".join(parts)


def decide(
    config: Config,
    route: Route,
    body: dict[str, Any] | None,
    memory: Memory,
    classifier: TaskClassifier | None,
    now: float | None = None,
    *,
    sized: bool = True,
) -> Decision:
    """Order the route's candidates by the group's strategy, then leave out models the
    prompt does not fit (unless not `sized`: a route that only counts a prompt's tokens,
    whose client asks to learn whether it fits) and models whose circuit is open or that
    stalled (when every one is, all but the one whose cool-down ends first). `now` is the
    monotonic clock unless a simulation brings its own."""
    now = time.monotonic() if now is None else now
    fixed = route.fixed
    if fixed is not None:
        health = memory.health
        for model in fixed.candidates:  # a loop, not all() over a generator made per request
            if not health[model.name].allows(now):
                break
        else:
            return fixed
    strategy = "pinned" if route.pinned else config.routing.strategy_of(route.group)
    own, fallbacks = route.candidates[: route.own], route.candidates[route.own :]
    skipped: list[tuple[str, str]] = []
    if route.limited and sized:
        prompt, wanted = estimate_parts(body)
        needed = prompt + wanted
        too_small = {m.name for m in route.candidates if m.max_context and needed > m.max_context}
        skipped += [(name, f"prompt needs ~{needed} tokens") for name in sorted(too_small)]
        own = tuple(m for m in own if m.name not in too_small)
        fallbacks = tuple(m for m in fallbacks if m.name not in too_small)
        if not own and not fallbacks:
            most = max(m.max_context or 0 for m in route.candidates)
            raise BadRequest(too_long(prompt, wanted, most), code="context_length_exceeded")
    task: dict[str, float] | None = None
    ranking: Ranking | None = None
    streamed = body is not None and body.get("stream") is True
    if strategy == "ml-based-routing" and own:
        asked = classifier if route.classified else None
        task = asked.predict_proba(prompt_text(body)) if asked is not None else {}
        ranking = rank(own, task, memory.health, config.routing.scoring, streamed)
        own = explore(list(ranking.models()), route.turns or route.group or "", memory)
    elif strategy in ORDERS and own:
        own = ORDERS[strategy](own, route.turns or route.group or "", memory, streamed)
    ordered = own + fallbacks
    open_now = {m.name for m in ordered if not memory.health[m.name].allows(now)}
    if open_now and len(open_now) == len(ordered):
        # Every one is avoided: the request tries the one free again soonest, not each
        # in turn (a timeout each, or a 429 its upstream asked to be spared for a while).
        first = min(ordered, key=lambda m: memory.health[m.name].open_until)
        open_now.discard(first.name)
    if open_now:
        skipped += [(name, "circuit open") for name in sorted(open_now)]
        ordered = tuple(m for m in ordered if m.name not in open_now)
    return Decision(strategy, ordered, task, ranking, tuple(skipped))


def too_long(prompt: int, wanted: int, most: int) -> str:
    """Why no candidate fits, in Anthropic's words, which its clients (and a gateway in
    front) look for: the prompt alone, or the prompt with what the client allows the
    answer (Claude Code compacts a conversation for the first, not for the second). The
    figures stand as Anthropic writes them, bare, for the clients that read them back;
    that the prompt's is an estimate is said after."""
    said = f"{prompt} is the gateway's estimate; {most} the largest max_context of the candidates"
    if prompt > most or not wanted:
        return f"prompt is too long: {prompt} tokens > {most} maximum ({said})"
    return (
        f"input length and `max_tokens` exceed context limit: {prompt} + {wanted} > {most}, "
        f"decrease input length or `max_tokens` and try again ({said})"
    )


def estimate_parts(body: dict[str, Any] | None) -> tuple[int, int]:
    """The tokens a request needs, in two parts: the prompt's, about four characters a
    token over every text of the request, and what the client allows the answer; enough
    to keep a long prompt off a small model."""
    if not body:
        return 0, 0
    # Chat's messages, Responses' input and instructions, Anthropic's system, a prompt,
    # and the tools the model is told of, whose definitions it reads as part of the prompt.
    chars = sum(measure(body.get(f)).text for f in _COUNTED)
    return chars // 4, asked_answer(body)


_COUNTED = ("messages", "input", "instructions", "system", "prompt", "tools", "functions")
