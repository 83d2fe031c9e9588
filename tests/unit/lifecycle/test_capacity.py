"""Capacity from the descriptor limit: two descriptors a stream, after a reserve."""

from __future__ import annotations

import resource
from pathlib import Path

from hxgw.config import load_config
from hxgw.lifecycle.capacity import (
    FLOOR,
    RESERVED,
    raise_descriptor_limit,
    size_gates,
    stream_capacity,
)
from hxgw.upstream import Gates
from tests.fixtures import write_config


def test_each_stream_takes_two_descriptors_after_the_reserve():
    assert stream_capacity(65536) == (65536 - RESERVED) // 2


def test_a_tiny_limit_still_allows_a_floor_of_streams():
    assert stream_capacity(100) == FLOOR


def test_the_soft_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
        got = raise_descriptor_limit()
        assert got == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert got == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_limits_upstream_connections_when_set_is_what_the_upstreams_share(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"limits": {"upstream_connections": 100}})
    gates = Gates()
    size_gates(gates, load_config(tmp_path, {"MASTER_KEY": "k"}), 65536)
    assert gates.capacity == 100
