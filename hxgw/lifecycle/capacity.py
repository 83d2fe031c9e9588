"""How many streams the process can hold, from the descriptors it may open.

A stream holds two descriptors, the client's connection and the upstream's; a
request waiting for its turn (hxgw.upstream.admission) holds one. At start the
soft limit is raised to the hard one (what systemd's LimitNOFILE sets), and
unless `limits.upstream_connections` says otherwise the upstreams share what
the queues and a reserve leave: with LimitNOFILE=65536, about 32k streams.
"""

from __future__ import annotations

import resource

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
