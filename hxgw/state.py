"""A config made ready to serve, and the one reference a reload swaps.

A snapshot is everything a config implies that the steps of a request read,
worked out once per load instead of once per request. It is built by one
function that touches no process state, so a reload can build it aside and
throw it away. A request reads `holder.current` once and keeps that snapshot to
its end: in-flight requests finish on the config they started with while new
ones use the new one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hxgw import __version__
from hxgw.config import ClientKey, Config
from hxgw.routing.learned.classifier import TaskClassifier
from hxgw.routing.learned.loading import load_classifier
from hxgw.routing.routes import Routes
from hxgw.runtime import Runtime
from hxgw.upstream import Origin, UpstreamClient, header_line


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayState:
    """A snapshot: one config and what it implies, as a request's steps read it
    (`ctx.state`); `runtime` and `client` are the process's, shared by every snapshot."""

    config: Config
    generation: int
    routes: Routes
    client: UpstreamClient
    keys_by_digest: Mapping[bytes, ClientKey]
    origins: Mapping[str, Origin]
    upstream_head: Mapping[str, bytes] = field(repr=False)
    """Per upstream, the header lines every request to it carries, framed once."""
    upload_head: Mapping[str, bytes] = field(repr=False)
    """The same without a Content-Type: an upload carries its client's, with its boundary."""
    loaded_at: float
    runtime: Runtime
    classifier: TaskClassifier | None

    def first_byte_timeout(self, stream: bool = True) -> float:
        """A stream's first-byte timeout, or a plain answer's."""
        timeouts = self.config.timeouts
        return timeouts.first_byte if stream else timeouts.answer

    def first_byte_budget(self, started: float, stream: bool = True) -> float:
        """Seconds left to get a first byte: `first_byte_timeout`, within the total one."""
        left = started + self.config.timeouts.total - time.perf_counter()
        return max(0.0, min(self.first_byte_timeout(stream), left))


def build_state(
    config: Config,
    client: UpstreamClient,
    generation: int,
    runtime: Runtime,
) -> GatewayState:
    """Everything a request needs from this config, computed once here instead of per
    request. Touches no process state: a reload builds it aside and may throw it away."""
    uses_classifier = config.routing.uses("ml-based-routing")
    fixed_headers = {
        name: {"User-Agent": f"hxgw/{__version__}"}
        | ({"Via": runtime.hop} if runtime.hop else {})
        | ({"Authorization": f"Bearer {upstream.key}"} if upstream.key else {})
        for name, upstream in config.upstreams.items()
    }
    return GatewayState(
        config=config,
        generation=generation,
        routes=Routes(config),
        client=client,
        keys_by_digest=MappingProxyType({key.digest: key for key in config.keys}),
        origins=MappingProxyType(
            {name: Origin.from_url(upstream.url) for name, upstream in config.upstreams.items()}
        ),
        upstream_head=MappingProxyType(
            {name: _framed(JSON, headers) for name, headers in fixed_headers.items()}
        ),
        upload_head=MappingProxyType(
            {name: _framed({}, headers) for name, headers in fixed_headers.items()}
        ),
        loaded_at=time.time(),
        runtime=runtime,
        classifier=load_classifier(config.routing.classifier) if uses_classifier else None,
    )


JSON = {"Content-Type": "application/json"}


def _framed(content_type: Mapping[str, str], headers: Mapping[str, str]) -> bytes:
    fixed = {**content_type, "Accept-Encoding": "identity"} | dict(headers)
    return b"".join(header_line(name, value) for name, value in fixed.items())


class SnapshotHolder:
    """The one mutable reference of the process: the snapshot new requests start on."""

    def __init__(self) -> None:
        self._current: GatewayState | None = None

    @property
    def started(self) -> bool:
        """Whether a snapshot serves yet."""
        return self._current is not None

    @property
    def current(self) -> GatewayState:
        if self._current is None:
            raise RuntimeError("the gateway has not started yet")
        return self._current

    def swap(self, snapshot: GatewayState) -> None:
        self._current = snapshot
