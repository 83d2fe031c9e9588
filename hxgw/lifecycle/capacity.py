"""How many streams the process can hold, from the descriptors it may open.

A stream holds two descriptors, the client's connection and the upstream's; a
request waiting for its turn (hxgw.upstream.admission) holds one. At start the
soft limit is raised to the hard one (what systemd's LimitNOFILE sets), and
unless `limits.upstream_connections` says otherwise the upstreams share what
the queues and a reserve leave: with LimitNOFILE=65536, about 32k streams.
"""

from __future__ import annotations

import resource

import structlog

from hxgw.config import Config
from hxgw.upstream import Gates

log = structlog.get_logger("hxgw.lifecycle.capacity")

RESERVED = 256
"""Descriptors kept for everything but streams: listeners, logs, probes, the journal."""
FLOOR = 64


def raise_descriptor_limit() -> int:
    """Raise the soft descriptor limit to the hard one; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY:
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def stream_capacity(descriptors: int, queued: int = 0) -> int:
    """The most concurrent streams `descriptors` allow: two each, after the reserve
    and one for each of `queued` waiting requests."""
    return max(FLOOR, (descriptors - RESERVED - queued) // 2)


def size_gates(gates: Gates, config: Config, descriptors: int) -> None:
    """Give every upstream of `config` its cap and queue: its own `max_concurrent`, or
    an equal share of `limits.upstream_connections`, else of what `descriptors` allow."""
    queued = sum(u.max_queued for u in config.upstreams.values())
    capacity = config.limits.upstream_connections or stream_capacity(descriptors, queued)
    gates.configure(config.upstreams.values(), capacity)


def log_capacity(gates: Gates, descriptors: int) -> None:
    """The one line at start that says what the process can hold."""
    log.info(
        "capacity",
        descriptors=descriptors,
        streams=gates.capacity,
        caps=",".join(f"{g.name}:{g.cap}" for g in gates.values()),
        queues=",".join(f"{g.name}:{g.max_queued}" for g in gates.values()),
    )
