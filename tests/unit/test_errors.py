"""The typed errors: their status, and their shape on OpenAI's and Anthropic's routes."""

from __future__ import annotations

import json

import pytest

from hxgw import error_shapes, errors
from hxgw.errors import BadRequest, GatewayError, UpstreamError


def _every_error_class() -> list[type[GatewayError]]:
    found, todo = [], [GatewayError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def test_errors_render_as_openai_error_json():
    body = json.loads(BadRequest("bad model", param="model").to_json())
    assert body == {"error": {"message": "bad model", "type": "invalid_request_error",
                              "param": "model", "code": "invalid_request"}}


@pytest.mark.parametrize("cls", _every_error_class(), ids=lambda cls: cls.__name__)
def test_every_error_class_carries_an_error_status_and_a_type(cls: type[GatewayError]):
    assert 400 <= cls.status <= 599
    assert cls.type


def test_extra_fields_join_the_error_object():
    body = UpstreamError("all failed", tried=[{"model": "a"}]).to_dict()
    assert body["error"]["tried"] == [{"model": "a"}]


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"),
    (402, "billing_error"), (405, "invalid_request_error"), (422, "invalid_request_error"),
    (500, "api_error"), (502, "api_error"), (503, "overloaded_error"), (504, "timeout_error"),
    (529, "overloaded_error"),
])
def test_an_anthropic_error_names_anthropics_type_for_its_status(status: int, kind: str):
    body = json.loads(error_shapes.anthropic_error(status, "why", "req_1"))
    assert body == {"type": "error", "error": {"type": kind, "message": "why"},
                    "request_id": "req_1"}


@pytest.mark.parametrize(("word", "hint"), [
    ("rmp", " (did you mean 'rpm'?)"),  # two letters swapped: too unlike by ratio alone
    ("tmp", " (did you mean 'tpm'?)"),
    ("budgte", " (did you mean 'budget'?)"),
    ("xyz", ""),
])
def test_did_you_mean_names_the_key_a_typo_meant(word: str, hint: str):
    assert errors.did_you_mean(word, ["rpm", "tpm", "budget", "groups"]) == hint


def test_an_upstream_s_error_detail_that_is_a_list_reaches_an_anthropic_client_as_json():
    detail = [{"loc": ["body", "max_tokens"], "msg": "field required"}]
    shaped = error_shapes.anthropic_shaped(422, json.dumps({"detail": detail}).encode(), "r")
    error = json.loads(shaped)["error"]
    assert (error["type"], json.loads(error["message"])) == ("invalid_request_error", detail)


def test_an_anthropic_shaped_error_nested_deeper_than_any_encoder_writes_quotes_its_body():
    body = b'{"detail": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    shaped = error_shapes.anthropic_shaped(422, body, "r")
    error = json.loads(shaped)["error"]
    assert error["type"] == "invalid_request_error" and error["message"] == body.decode()[:1000]


def test_an_anthropic_shaped_error_quoting_input_deeper_than_orjson_writes_is_still_one():
    # A 422 whose `detail` echoes a body as deep as the gateway takes, a level deeper.
    detail = [{"input": []}]
    for _ in range(300):
        detail = [detail]
    shaped = error_shapes.anthropic_shaped(422, json.dumps({"detail": detail}).encode(), "r")
    error = json.loads(shaped)["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith("[[[")
