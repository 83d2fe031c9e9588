"""Ids bound to the model or upstream that holds their state."""

from __future__ import annotations

import pytest

from hxgw.upstream.affinity import Bound, bind, unbind


def test_a_bound_id_names_its_model_and_the_upstreams_id():
    client_id = bind("model", "gpt-a", "resp_abc123")
    assert unbind(client_id) == Bound("model", "gpt-a", "resp_abc123")


def test_a_bound_id_keeps_the_upstreams_prefix():
    assert bind("model", "m", "resp_1").startswith("resp_hx1")
    assert bind("upstream", "u", "file-1").startswith("file-hx1")
    assert bind("upstream", "u", "batch_1").startswith("batch_hx1")


def test_a_bound_id_is_safe_in_a_url_path():
    client_id = bind("model", "vendor/model:latest", "resp_a/b?c=d#e")
    assert all(c.isalnum() or c in "_-" for c in client_id)
    assert unbind(client_id) == Bound("model", "vendor/model:latest", "resp_a/b?c=d#e")


def test_an_id_without_a_prefix_is_bound_too():
    assert unbind(bind("upstream", "u", "12345")) == Bound("upstream", "u", "12345")


@pytest.mark.parametrize(
    "client_id",
    ["resp_abc123", "resp_hx1", "resp_hx1!!!", "resp_hx1" + "eDpmb28KYmFy", "", "hx1", "file-hx1Zm9v"],
)
def test_an_id_the_gateway_did_not_make_is_not_bound(client_id: str):
    # "eDpmb28KYmFy" is "x:foo\nbar": an unknown kind.
    assert unbind(client_id) is None


@pytest.mark.parametrize("step", [".", ".."])
def test_an_id_bound_to_a_path_step_is_not_bound(step: str):
    assert unbind(bind("upstream", "default", step)) is None
