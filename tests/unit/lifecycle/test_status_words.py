"""The supervisor's STATUS= words after a reload."""

from __future__ import annotations

from hxgw.lifecycle.status_words import also_waiting


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
