"""What /status.json says and the status page draws: the process, its config, each
upstream, model and group, the stores, and the ledger's recent usage; with several
workers, the daemon's (their sum). /readyz answers with its readiness part.
"""

from __future__ import annotations

import time
from typing import Any

from hxgw import __version__
from hxgw.observe.key_store import key_store_status
from hxgw.observe.ledger import ledger_status
from hxgw.observe.limits_store import limits_store_status
from hxgw.observe.status_sum import total_status
from hxgw.state import GatewayState
from hxgw.upstream import Gate


def readiness(state: GatewayState) -> tuple[bool, dict[str, Any]]:
    """What /readyz answers: whether this process is ready, and why not."""
    runtime, stored = state.runtime, state.runtime.stored_keys
    return runtime.readiness.report(
        state.config,
        runtime.inflight.draining,
        runtime.loop_lag.seconds,
        keys_unread=stored is not None and not stored.ever_read,
    )


async def status_with_usage(state: GatewayState) -> dict[str, Any]:
    """The daemon's status and the ledger's usage series. Every worker reads the same
    store, so the usage is not summed over workers; it is read in a thread, at most once
    every few seconds (hxgw.usage.RecentUsage)."""
    return daemon_status(state) | {"usage": await state.runtime.recent_usage.read()}


_UPSTREAM = ("name", "url", "reachable", "last_ok_seconds_ago")


def daemon_status(state: GatewayState) -> dict[str, Any]:
    """This process's status or, with several workers, the daemon's: their sum."""
    own = status(state)
    figures = state.runtime.figures
    if figures is None:
        return own
    return total_status(own, (other["status"] for other in figures.others()))


def status(state: GatewayState) -> dict[str, Any]:
    """What /status.json says: the process, its config, each upstream, model and group."""
    config, runtime = state.config, state.runtime
    is_ready, ready = readiness(state)
    groups_of: dict[str, list[str]] = {}
    for group in config.routing.groups.values():
        for name in group.models:
            groups_of.setdefault(name, []).append(group.name)
    models = []
    now = time.monotonic()
    for model in config.models.values():
        health = runtime.memory.health[model.name]
        models.append(
            {
                "name": model.name,
                "upstream_model": model.upstream_model,
                "groups": groups_of.get(model.name, []),
                "circuit": health.circuit_now(now),
                # Skipped with its circuit closed: its oldest request waits past the limit.
                "stalled": health.circuit == "closed" and health.stalled(now),
                "ewma_ttfb_ms": _ms(health.ewma_ttfb),
                "ewma_plain_ms": _ms(health.ewma_plain),
                "ewma_latency_ms": _ms(health.ewma_latency),
                "error_rate": round(health.error_rate, 4),
                "inflight": health.inflight,
                "requests": health.requests,
            }
        )
    reload = runtime.last_reload
    return {
        "version": __version__,
        "uptime_seconds": round(time.time() - runtime.started, 1),
        "config_generation": state.generation,
        "last_reload": {"result": reload.result, "message": reload.message, "at": _iso(reload.at)},
        # What /readyz says, so that the page an incident opens says why it is 503.
        "ready": is_ready,
        "reasons": ready["reasons"],
        "draining": runtime.inflight.draining,
        "listen": runtime.listening,
        "upstreams": [
            {k: u[k] for k in (*_UPSTREAM, "last_error", "missing_models")}
            | _saturation(runtime.gates.get(u["name"]))
            for u in ready["upstreams"]
        ],
        "requests": runtime.rate.snapshot(len(runtime.inflight)),
        "models": models,
        "ledger": ledger_status(runtime.ledger),
        "limits_store": limits_store_status(runtime.redis_limiter()),
        "key_store": key_store_status(runtime.stored_keys),
        "groups": [
            {
                "name": g.name,
                "strategy": config.routing.strategy_of(g.name),
                "models": list(g.models),
            }
            for g in config.routing.groups.values()
        ],
    }


def _saturation(gate: Gate | None) -> dict[str, int]:
    """How full an upstream is: requests in flight against its cap, waiting, shed."""
    if gate is None:
        return {"in_use": 0, "cap": 0, "queued": 0, "shed": 0}
    return gate.saturation()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _iso(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
