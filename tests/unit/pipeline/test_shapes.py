"""What check_shape lets through: every shape the APIs take for their main field."""

from __future__ import annotations

from typing import Any

import pytest

from hxgw.pipeline.shapes import check_shape


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
])
def test_every_shape_the_apis_take_goes_through(endpoint: str, body: dict[str, Any]):
    check_shape(endpoint, body)
