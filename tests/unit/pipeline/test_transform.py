"""The body each candidate gets: the client's bytes when nothing changes them, else the
body rewritten for the model, encoded once."""

from __future__ import annotations

import pytest

from hxgw import jsonio
from hxgw.config import Model
from hxgw.config.transforms import Rename, SetFields
from hxgw.errors import BadRequest
from hxgw.pipeline.transform import UpstreamBodies


def _model(name: str, *transforms: Rename | SetFields) -> Model:
    return Model(name=name, tier_score=0.5, specializations=(), upstream_model="m-emb",
                 transforms=transforms)


def _bodies(raw: bytes) -> UpstreamBodies:
    return UpstreamBodies(jsonio.loads(raw), raw)


def test_a_model_s_rewrites_apply_when_the_client_named_its_upstream_model_itself():
    model = _model("emb", Rename(pairs=(("input", "prompt"),)))
    sent = _bodies(b'{"model": "m-emb", "input": "hi"}').for_model(model)
    assert jsonio.loads(sent) == {"model": "m-emb", "prompt": "hi"}


def test_two_models_of_one_upstream_model_each_get_their_own_rewrites():
    bodies = _bodies(b'{"model": "chat", "temperature": 1}')
    cold = _model("cold", SetFields(pairs=(("temperature", 0),)))
    hot = _model("hot", SetFields(pairs=(("temperature", 2),)))
    assert jsonio.loads(bodies.for_model(cold))["temperature"] == 0
    assert jsonio.loads(bodies.for_model(hot))["temperature"] == 2


def test_a_body_passed_on_as_it_came_nested_as_deep_as_the_gateway_writes_goes_as_it_came():
    raw = b'{"model": "m-emb", "x": ' + b"[" * 253 + b"]" * 253 + b"}"  # 254 levels
    assert _bodies(raw).for_model(_model("emb")) == raw


def test_a_body_passed_on_as_it_came_one_level_deeper_than_the_gateway_writes_is_a_400():
    # orjson writes 254 levels; the client's bytes, passed on untouched, met upstream
    # parsers that failed on them with a 500, held against the model.
    raw = b'{"model": "m-emb", "x": ' + b"[" * 254 + b"]" * 254 + b"}"
    with pytest.raises(BadRequest, match="nested too deeply"):
        _bodies(raw).for_model(_model("emb"))
