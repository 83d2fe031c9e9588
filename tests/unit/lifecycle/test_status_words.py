"""The supervisor's STATUS= words after a reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from hxgw.config import Config, load_config
from hxgw.lifecycle.status_words import SupervisorStatus, also_waiting
from tests.fixtures import write_config


@pytest.fixture
def status(tmp_path: Path) -> SupervisorStatus:
    write_config(tmp_path, "http://127.0.0.1:1")
    config: Config = load_config(tmp_path, {"MASTER_KEY": "k"})
    return SupervisorStatus(2, "127.0.0.1:4010", config)


def test_what_only_the_supervisor_sees_waiting_is_added_to_worker_0_s_words():
    said = "last reload: ok: generation 2, nothing changed"
    assert also_waiting(said, ["listen"]) == said + "; waiting for a restart: listen"


def test_it_joins_what_the_workers_already_wait_for():
    said = "last reload: ok: generation 2, changed gateway.yaml; waiting for a restart: tls"
    assert also_waiting(said, ["listen", "workers"]) == (
        "last reload: ok: generation 2, changed gateway.yaml; "
        "waiting for a restart: listen, workers, tls")


def test_nothing_waiting_leaves_the_words_as_they_are():
    said = "last reload: ok: generation 2, nothing changed"
    assert also_waiting(said, []) == said


def test_every_worker_serving_is_said_without_a_count_of_them(status: SupervisorStatus):
    assert status.text("ready", serving_now=2, generation=1).startswith(
        "2 workers on 127.0.0.1:4010; config generation 1;")


def test_a_worker_down_is_said_by_how_many_of_them_serve(status: SupervisorStatus):
    assert status.text("a worker is down", serving_now=1, generation=1).startswith(
        "1 of 2 workers on 127.0.0.1:4010;")


def test_the_last_reload_s_words_are_said_again_after_a_worker_s_restart(
    status: SupervisorStatus,
):
    # The bad files a refused reload left are still there.
    status.text("last reload: rejected: routing.yaml: bad", serving_now=2, generation=1)
    assert status.text("a worker was started again", serving_now=2, generation=1).endswith(
        "; a worker was started again; last reload: rejected: routing.yaml: bad")
