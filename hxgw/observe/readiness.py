"""Is an upstream reachable? A cheap background probe, plus every proxied success.

`/readyz` answers 200 while the config is loaded, the daemon is not draining
and at least one upstream answered within `readiness.stale_after` seconds;
otherwise 503 with the reasons, so a load balancer stops sending traffic.

The probe takes no turn under an upstream's cap (hxgw.upstream.admission): an upstream
busy with long streams at its cap answers all the same, and a probe waiting behind
them would call it down, take a client's place in the queue, and count as shed.
One request every `readiness.interval` is nothing to the cap's purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from hxgw import jsonio
from hxgw.config import Config
from hxgw.upstream import Origin, UpstreamClient


class Probed(Protocol):
    """What a probe needs of the current snapshot's state."""

    @property
    def config(self) -> Config: ...
    @property
    def client(self) -> UpstreamClient: ...
    @property
    def origins(self) -> Mapping[str, Origin]: ...
    @property
    def upstream_head(self) -> Mapping[str, bytes]: ...


UpGauge = Callable[[str, bool], None]
"""Told after each probe whether the upstream counts as reachable."""

log = structlog.get_logger("hxgw.observe.readiness")
RETRY_INTERVAL = 0.5
# The probe reads the answer whole to keep its connection; a longer one is cut off.
PROBE_READ_LIMIT = 8 * 1024 * 1024
SHOWN_CHARS = 100
"""The most of a listed model's id a log line names."""
PROBE_HINTS = {
    401: ": the upstream refuses the gateway's key (the upstream's key_env, HX_UPSTREAM_KEY)",
    403: ": the upstream refuses the gateway's key (the upstream's key_env, HX_UPSTREAM_KEY)",
    404: ": no /v1/models there (the gateway adds /v1 to the url: is it in the url too?)",
    508: ": the upstream's url points back at this gateway",
}
"""What a probe's answer most likely means, for the status page, /readyz and the log."""
NO_DB_HINT = (
    ": the upstream refuses the gateway's key (LiteLLM without a database takes only its"
    " master key: set HX_UPSTREAM_KEY to it)"
)


class Readiness:
    def __init__(self) -> None:
        self.last_ok: dict[str, float] = {}
        self.last_error: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        """Each upstream's URL when it was last probed: what was seen of a name is of it."""
        self.none_answer = False
        """No upstream answers: said at `error` (every request then gets a 502), once."""
        self.missing: dict[str, tuple[str, ...]] = {}
        """Per upstream, the registry's models its list lacks (said at `warning`, once)."""

    def follow(self, config: Config) -> list[str]:
        """Forget what was seen of the upstreams a reload removed or moved to another URL
        (an answer from the old one says nothing of the new); return the removed names."""
        urls = {name: upstream.url for name, upstream in config.upstreams.items()}
        for name in [n for n, url in self.urls.items() if urls.get(n) != url]:
            self.last_ok.pop(name, None)
            self.last_error.pop(name, None)
            self.missing.pop(name, None)
        removed = [name for name in self.urls if name not in urls]
        self.urls = urls
        return removed

    def saw_ok(self, upstream: str) -> None:
        self.last_ok[upstream] = time.monotonic()

    def reachable(self, upstream: str, now: float, stale_after: float) -> bool:
        seen = self.last_ok.get(upstream)
        return seen is not None and now - seen <= stale_after

    def report(
        self, config: Config, draining: bool, loop_lag: float, keys_unread: bool = False
    ) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        stale_after = config.readiness.stale_after
        upstreams = []
        for upstream in config.upstreams.values():
            seen = self.last_ok.get(upstream.name)
            upstreams.append(
                {
                    "name": upstream.name,
                    "url": upstream.url,
                    "reachable": self.reachable(upstream.name, now, stale_after),
                    "last_ok_seconds_ago": round(now - seen, 1) if seen is not None else None,
                    "last_error": self.last_error.get(upstream.name),
                    "missing_models": list(self.missing.get(upstream.name, ())),
                }
            )
        reasons = []
        if draining:
            reasons.append("draining: the gateway is shutting down")
        if not any(u["reachable"] for u in upstreams):
            reasons.append(f"no upstream answered in the last {stale_after:g}s")
        if keys_unread:  # started while its store was away: other instances may check them
            reasons.append("the key store has not been read yet: no stored key can be checked")
        limit = config.readiness.max_loop_lag
        if limit and loop_lag > limit:
            reasons.append(f"overloaded: the event loop runs {loop_lag:.2f}s late")
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "draining": draining,
            "loop_lag_seconds": round(loop_lag, 3),
            "upstreams": upstreams,
        }
        return not reasons, body

    async def probe_forever(
        self, current: Callable[[], Probed], up: UpGauge, gone: Callable[[str], None]
    ) -> None:
        """Ask each upstream for its model list every `interval` seconds; `gone` hears of
        each upstream a reload removed."""
        while True:
            state = current()
            for name in self.follow(state.config):
                gone(name)
            await asyncio.gather(*(self._probe(state, name, up) for name in state.config.upstreams))
            self._say_whether_any_answers(state.config)
            interval = state.config.readiness.interval
            if len(self.last_error) or len(self.last_ok) < len(state.config.upstreams):
                # Not everything answers yet: look again soon, so /readyz recovers quickly.
                interval = min(interval, RETRY_INTERVAL)
            await asyncio.sleep(interval)

    def _say_whether_any_answers(self, config: Config) -> None:
        now, stale_after = time.monotonic(), config.readiness.stale_after
        none = not any(self.reachable(name, now, stale_after) for name in config.upstreams)
        if none and not self.none_answer:
            log.error(
                "no upstream answers: /readyz says not ready, requests get 502",
                upstreams=", ".join(
                    f"{n}: {self.last_error.get(n, 'no answer')}" for n in config.upstreams
                ),
            )
        elif self.none_answer and not none:
            log.info("an upstream answers again: ready")
        self.none_answer = none

    def _check_models(self, config: Config, name: str, listed: bytes) -> None:
        """Say which of the registry's models on upstream `name` its list lacks: pointed
        at a new upstream (a LiteLLM of one's own) with the example registry, every
        request fails over its models and gets a 502, and nothing else says why."""
        ids = model_ids(listed)
        wanted = {m.upstream_model for m in config.models.values() if m.upstream == name}
        if ids is None or any("*" in i for i in ids):
            return  # not a list, or one of wildcards (LiteLLM's `openai/*`): no telling
        missing = tuple(sorted(wanted - ids))
        if missing == self.missing.get(name, ()):
            return
        self.missing[name] = missing
        if missing:
            log.warning(
                "the upstream does not list models the registry sends it: requests for them"
                " will fail; set their upstream_model to names it lists",
                upstream=name,
                missing=", ".join(missing),
                it_lists=", ".join(_shown(i) for i in sorted(ids)[:20]) or "nothing",
            )
        else:
            log.info("the upstream lists every model the registry sends it", upstream=name)

    async def _probe(self, state: Probed, name: str, up: UpGauge) -> None:
        """GET /v1/models, which every OpenAI-compatible server answers."""
        upstream = state.config.upstreams[name]
        try:
            async with asyncio.timeout(state.config.timeouts.connect):
                status, listed = await state.client.fetch(
                    state.origins[name],
                    b"/v1/models",
                    state.upstream_head[name],
                    (),
                    limit=PROBE_READ_LIMIT,
                    connect_timeout=state.config.timeouts.connect,
                )
                ok = status == 200
                error = None if ok else f"HTTP {status}" + _hint(status, listed)
        except (OSError, TimeoutError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if ok:
            self.saw_ok(name)
            if self.last_error.pop(name, None) is not None:
                log.info("upstream reachable again", upstream=name)
            self._check_models(state.config, name, listed)
        elif self.last_error.get(name) != error:
            self.last_error[name] = error or "error"
            log.warning("upstream probe failed", upstream=name, url=upstream.url, error=error)
        up(name, self.reachable(name, time.monotonic(), state.config.readiness.stale_after))


def _shown(model_id: str) -> str:
    """A model the upstream lists, as a log line names it: its first SHOWN_CHARS. The id
    is the upstream's, of any length: 20 of 400,000 characters had made a line of 8 MB."""
    return model_id if len(model_id) <= SHOWN_CHARS else model_id[:SHOWN_CHARS] + "..."


def _hint(status: int, answer: bytes) -> str:
    """PROBE_HINTS's, or LiteLLM's own refusal of the gateway's key: without a database it
    takes only its master key, and says so with a 400 of its own type."""
    if status == 400 and b"no_db_connection" in answer:
        with contextlib.suppress(jsonio.DecodeError, AttributeError, TypeError):
            if jsonio.loads(answer).get("error", {}).get("type") == "no_db_connection":
                return NO_DB_HINT
    return PROBE_HINTS.get(status, "")


def model_ids(listed: bytes) -> set[str] | None:
    """The ids of an OpenAI-shaped model list (`{"data": [{"id": ...}]}`); None when it is
    not one, or only its first page (`has_more`, as Anthropic's lists are paged)."""
    try:
        document = jsonio.loads(listed)
        data = document.get("data")
    except (jsonio.DecodeError, AttributeError):
        return None
    if not isinstance(data, list) or document.get("has_more") is True:
        return None
    return {e["id"] for e in data if isinstance(e, dict) and isinstance(e.get("id"), str)}
