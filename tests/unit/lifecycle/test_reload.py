"""Reload: whatever building the new snapshot raises, the old one keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hxgw.config import load_config
from hxgw.lifecycle import daemon as daemon_module
from hxgw.lifecycle.daemon import Daemon
from hxgw.lifecycle.override import Override
from hxgw.state import build_state
from hxgw.upstream import UpstreamClient
from tests.fixtures import NotifySocket, new_key, write_config


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", sock.path)
    yield sock
    sock.sock.close()


@pytest.fixture
async def daemon(tmp_path: Path, notify: NotifySocket) -> AsyncIterator[Daemon]:
    """A daemon serving its first snapshot, as `run` leaves it (without listening)."""
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1")
    env = {"MASTER_KEY": new_key()}
    daemon = Daemon(load_config(config_dir, env), str(config_dir), env, Override())
    client = UpstreamClient()
    daemon.holder.swap(build_state(daemon.started_with, client, 1, daemon.runtime))
    yield daemon
    daemon.notifier.close()
    client.close()


async def test_a_snapshot_builder_that_raises_keeps_the_old_snapshot_serving(
    daemon: Daemon, notify: NotifySocket, monkeypatch: pytest.MonkeyPatch
):
    before = daemon.holder.current

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the builder broke")

    monkeypatch.setattr(daemon_module, "build_state", broken)
    assert await daemon.reload() is False
    assert daemon.holder.current is before
    assert daemon.runtime.last_reload.result == "failed"
    ready = [m for m in notify.drain() if m.get("READY") == "1"]
    assert ready and "failed: RuntimeError: the builder broke" in ready[-1]["STATUS"]


async def test_a_good_reload_swaps_in_a_new_generation(daemon: Daemon):
    assert await daemon.reload() is True
    assert daemon.holder.current.generation == 2


async def test_a_reload_counts_what_changed_since_the_reload_before_not_the_start(
    daemon: Daemon, tmp_path: Path
):
    routing = {"routing": {"strategy": "failover", "default_group": "chat",
                           "groups": {"chat": ["beta", "alpha"], "emb": ["embed"]}}}
    write_config(tmp_path / "conf", "http://127.0.0.1:1", routing=routing)
    assert await daemon.reload() is True
    assert "changed routing.yaml" in daemon.runtime.last_reload.message
    assert await daemon.reload() is True
    assert "nothing changed" in daemon.runtime.last_reload.message


async def test_a_reload_sets_the_generation_metrics_show(daemon: Daemon):
    assert await daemon.reload() is True
    metrics = daemon.runtime.metrics
    assert metrics.registry.get_sample_value("hxgw_config_generation") == 2


async def test_a_reload_lends_a_key_s_slot_for_the_new_total_timeout(
    daemon: Daemon, tmp_path: Path
):
    # A request may now run that long: a shorter lease would free its slot while it runs.
    timeouts = {"connect": 2, "first_byte": 5, "idle": 5, "total": 99}
    write_config(tmp_path / "conf", "http://127.0.0.1:1", gateway={"timeouts": timeouts})
    assert await daemon.reload() is True
    assert daemon.runtime.limiter.lease_s == 99
