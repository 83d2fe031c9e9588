"""The error JSON shape, and the chain built from steps."""

from __future__ import annotations

import json
from typing import Any

from hxgw.errors import BadRequest, GatewayError, PayloadTooLarge, Unauthorized, UpstreamError
from hxgw.pipeline.chain import MODELS_STEPS, PROXY_STEPS, build_chain


def test_errors_render_as_openai_error_json():
    body = json.loads(BadRequest("bad model", param="model").to_json())
    assert body == {"error": {"message": "bad model", "type": "invalid_request_error",
                              "param": "model", "code": "invalid_request"}}


def test_each_error_class_carries_its_status():
    assert [cls.status for cls in (BadRequest, Unauthorized, PayloadTooLarge, UpstreamError,
                                   GatewayError)] == [400, 401, 413, 502, 500]


def test_extra_fields_join_the_error_object():
    body = UpstreamError("all failed", tried=[{"model": "a"}]).to_dict()
    assert body["error"]["tried"] == [{"model": "a"}]


async def test_the_chain_runs_steps_in_order_and_each_can_stop_it():
    seen: list[str] = []

    def step(name: str, stop: bool = False) -> Any:
        async def run(ctx: Any, call_next: Any) -> None:
            seen.append(name)
            if not stop:
                await call_next(ctx)
        return run

    await build_chain([step("a"), step("b", stop=True), step("c")])(object())  # type: ignore[arg-type]
    assert seen == ["a", "b"]


def test_the_proxy_chain_authenticates_before_reading_the_body():
    names = [step.__name__ for step in PROXY_STEPS]
    assert names == ["assign_request_id", "log_access", "record_metrics", "record_usage",
                     "render_errors", "authenticate", "parse_body", "route", "apply_limits",
                     "transform_request", "forward", "relay"]
    assert [step.__name__ for step in MODELS_STEPS][-1] == "list_models"
