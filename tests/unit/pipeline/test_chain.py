"""The chain built from steps."""

from __future__ import annotations

from typing import Any

from hxgw.pipeline.chain import MODELS_STEPS, PROXY_STEPS, build_chain


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
    assert names.index("authenticate") < names.index("parse_body")


def test_the_proxy_chain_renders_errors_inside_the_steps_that_log_and_bill_them():
    names = [step.__name__ for step in PROXY_STEPS]
    render = names.index("render_errors")
    assert all(names.index(s) < render for s in ("log_access", "record_metrics", "record_usage"))
    assert render < names.index("authenticate")


def test_the_models_chain_ends_in_the_step_that_lists_them():
    assert MODELS_STEPS[-1].__name__ == "list_models"
