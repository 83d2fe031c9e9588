"""What check_shape lets through: every shape the APIs take for their main field."""

from __future__ import annotations

from typing import Any

import pytest

from hxgw.endpoints import PROXIED
from hxgw.errors import BadRequest
from hxgw.pipeline.shapes import check_shape

ROUTE = {endpoint.name: endpoint for endpoint in PROXIED}


@pytest.mark.parametrize(("endpoint", "body"), [
    ("chat", {"messages": [{"role": "user", "content": "hi"}]}),
    ("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
    ("chat", {"messages": [{"role": "assistant", "content": None, "tool_calls": []}]}),
    ("chat", {"messages": [{"role": "assistant", "tool_calls": []}]}),
    ("chat", {"messages": []}),
    ("chat", {}),
    ("messages", {"messages": [{"role": "user", "content": "hi"}]}),
    ("responses", {"input": "hi"}),
    ("responses", {"input": [{"role": "user", "content": "hi"}]}),
    ("responses", {"previous_response_id": "resp_1"}),
    ("completions", {"prompt": [1, 2, 3]}),
    ("completions", {"prompt": ["a", "b"]}),
    ("embeddings", {"input": [[1, 2], [3]]}),
    ("moderations", {"input": 5}),
    ("chat", {"messages": [], "tool_choice": "auto", "response_format": {"type": "text"}}),
    ("chat", {"messages": [], "tool_choice": {"type": "function", "function": {"name": "f"}}}),
    ("chat", {"messages": [], "tool_choice": None, "response_format": None}),
    ("responses", {"input": "hi", "tool_choice": "required"}),
    ("messages", {"messages": [], "tool_choice": {"type": "auto"}}),
])
def test_every_shape_the_apis_take_goes_through(endpoint: str, body: dict[str, Any]):
    check_shape(ROUTE[endpoint], body)


@pytest.mark.parametrize(("endpoint", "body", "param"), [
    ("chat", {"messages": [], "tool_choice": 5}, "tool_choice"),
    ("chat", {"messages": [], "response_format": "json_object"}, "response_format"),
    ("responses", {"input": "hi", "tool_choice": 1.5}, "tool_choice"),
    ("messages", {"messages": [], "tool_choice": "auto"}, "tool_choice"),
])
def test_a_field_beside_the_main_one_of_a_type_the_api_refuses_is_named(
    endpoint: str, body: dict[str, Any], param: str
):
    with pytest.raises(BadRequest) as refused:
        check_shape(ROUTE[endpoint], body)
    assert refused.value.param == param
