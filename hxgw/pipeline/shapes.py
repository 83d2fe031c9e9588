"""The shape of the fields an upstream cannot be trusted to refuse: a chat's `messages`
and their `content`, a Responses call's `input`, a completion's `prompt`, an embedding's
`input`, and the `tool_choice` and `response_format` beside them. OpenAI and Anthropic
answer a wrong type with a 400; LiteLLM, in front of them, with a 500 (`'int' object is
not iterable`, "Invalid tool choice"), which fails over and counts against every model:
a dozen such requests from one client had opened every model's circuit. And the fields
by which a request would steer LiteLLM, refused wherever they stand."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from hxgw.config.reader import kind_of
from hxgw.endpoints import CHAT, COUNT_TOKENS, MESSAGES, RESPONSES, Endpoint
from hxgw.errors import BadRequest

_TEXTS = (str, list)
"""A string, or a list of them (or of parts, or of token ids)."""
_Kind = tuple[tuple[type, ...], str]
_OBJECT: _Kind = ((dict,), "an object")
_CHOICE: _Kind = ((str, dict), "a string or an object")
_BESIDE: dict[Endpoint, dict[str, _Kind]] = {
    CHAT: {"tool_choice": _CHOICE, "response_format": _OBJECT},
    RESPONSES: {"tool_choice": _CHOICE},
    MESSAGES: {"tool_choice": _OBJECT},
    COUNT_TOKENS: {"tool_choice": _OBJECT},
}
"""Fields beside the prompt's (Endpoint.prompt), with the types the APIs take for them;
null is the upstream's to judge (OpenAI takes it as left out)."""


STEERING = frozenset(
    {
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "mock_testing_fallbacks",
        "mock_testing_context_fallbacks",
        "mock_testing_content_policy_fallbacks",
        "user_config",
        "model_list",
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "custom_llm_provider",
    }
)
"""The fields by which LiteLLM lets a request choose other models, deployments,
providers or endpoints than its own: passed on, they would take a key limited to some
groups to any model LiteLLM serves, billed at the price of the one it named. The gateway
routes."""
FILE_ROUTING = frozenset({"target_model_names", "target_storage"})
"""The fields by which LiteLLM's `/v1/files` puts a file in another deployment's account
or store than the upstream the gateway chose (`custom_llm_provider` too, in STEERING)."""


def check_shape(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Raise BadRequest, naming the field, for a field that would steer LiteLLM, and for a
    wrong type where the endpoint's prompt is; a field left out is the upstream's to
    refuse."""
    if not STEERING.isdisjoint(body):
        raise steering(min(STEERING.intersection(body)))
    for field, (types, expected) in _BESIDE.get(endpoint, {}).items():
        value = body.get(field)
        if value is not None and not isinstance(value, types):
            raise _invalid(field, expected, value)
    name = endpoint.prompt
    if name is None or name not in body:
        return
    value = body[name]
    if name == "messages":
        if not isinstance(value, list):
            raise _invalid(name, "an array of objects", value)
        for index, message in enumerate(value):
            if not isinstance(message, dict):
                raise _invalid(f"{name}[{index}]", "an object", message)
            content = message.get("content")
            if content is not None and not isinstance(content, _TEXTS):
                raise _invalid(f"{name}[{index}].content", "a string or an array", content)
    elif not isinstance(value, _TEXTS):
        raise _invalid(name, "a string or an array", value)


def check_query(query: str) -> None:
    """Raise BadRequest for a query string (forwarded on the files, batches and stored
    responses routes) that names a field of STEERING or FILE_ROUTING: LiteLLM's file
    routes read `custom_llm_provider` and `target_model_names` from the query before
    the body."""
    if not query:
        return
    names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    if not names.isdisjoint(_REFUSED_IN_QUERY):
        raise steering(min(names & _REFUSED_IN_QUERY))


_REFUSED_IN_QUERY = STEERING | FILE_ROUTING


def steering(field: str) -> BadRequest:
    """The refusal of a request that names `field`, one of STEERING, in its body, form
    or query."""
    return BadRequest(
        f"'{field}' steers LiteLLM's routing, which this gateway does: name a group or "
        "a model of its registry as 'model' (its failover_order says where it fails over)",
        param=field,
    )


def _invalid(param: str, expected: str, value: Any) -> BadRequest:
    got = kind_of(value, json=True)
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {got}", param=param
    )
