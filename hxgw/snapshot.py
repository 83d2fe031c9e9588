"""A config made ready to serve, and the one reference a reload swaps.

A snapshot is everything a config implies: the state the steps read and the
chain of each endpoint. It is built by one function that touches no process
state, so a reload can build it aside and throw it away. A request reads
`holder.current` once and keeps that snapshot to its end: in-flight requests
finish on the config they started with while new ones use the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hxgw.config import Config
from hxgw.pipeline.chain import build_chains
from hxgw.runtime import Runtime
from hxgw.state import GatewayState, build_state
from hxgw.types import Next
from hxgw.upstream.client import UpstreamClient


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: GatewayState
    chains: Mapping[str, Next]


def build_snapshot(
    config: Config, client: UpstreamClient, generation: int, runtime: Runtime
) -> Snapshot:
    state = build_state(config, client, generation, runtime)
    return Snapshot(state, MappingProxyType(build_chains(config)))


class SnapshotHolder:
    """The one mutable reference of the process: the snapshot new requests start on."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._current: Snapshot | None = None

    @property
    def current(self) -> Snapshot:
        if self._current is None:
            raise RuntimeError("the gateway has not started yet")
        return self._current

    def swap(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        self.config = snapshot.state.config
