"""How many streams the process can hold, from the descriptors it may open.

A stream holds two descriptors, the client's connection and the upstream's. At
start the soft limit is raised to the hard one (what systemd's LimitNOFILE
sets), and unless `limits.upstream_connections` says otherwise the cap on
upstream requests is what the rest leaves: with LimitNOFILE=65536, about 32k.
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


def stream_capacity(descriptors: int) -> int:
    """The most concurrent streams `descriptors` allow: two each, after the reserve."""
    return max(FLOOR, (descriptors - RESERVED) // 2)
