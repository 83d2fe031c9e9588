"""prompt_text: the text to classify, from any request body, never raising."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hxgw.routing.learned.classifier import prompt_text
from hxgw.routing.learned.prompt import MAX_ITEMS

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=10,
)
roles = st.sampled_from(["user", "system", "developer", "assistant"]) | json_values
part = json_values | st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "input_text", "image_url"]) | json_values},
    optional={"text": json_values},
)
message = json_values | st.fixed_dictionaries(
    {}, optional={"role": roles, "content": json_values | st.lists(part, max_size=4)}
)
messages = json_values | st.lists(message, max_size=5)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "messages": messages,
        "prompt": messages,
        "input": messages,
        "model": json_values,
        "system": json_values | st.lists(part, max_size=3),
        "instructions": json_values,
    },
)


def test_chat_uses_the_last_user_message_then_the_system_message() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are a Python expert."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello!"},
            {"role": "user", "content": "sort a dict by value"},
        ]
    }
    assert prompt_text(body) == "sort a dict by value\n\nYou are a Python expert."


def test_chat_content_parts_contribute_their_text_only() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                    {"type": "text", "text": "translate the sign"},
                ],
            }
        ]
    }
    assert prompt_text(body) == "what is in this image?\ntranslate the sign"


def test_chat_without_a_user_message_falls_back_to_the_last_message() -> None:
    body = {"messages": [{"role": "assistant", "content": "earlier answer"}]}
    assert prompt_text(body) == "earlier answer"


def test_long_system_messages_are_cut() -> None:
    body = {
        "messages": [{"role": "system", "content": "x" * 5000}, {"role": "user", "content": "hi"}]
    }
    assert len(prompt_text(body)) < 600


def test_completions_prompt_as_string_or_list() -> None:
    assert prompt_text({"prompt": "once upon a time"}) == "once upon a time"
    assert prompt_text({"prompt": ["a", "b", 3]}) == "a\nb"


def test_an_embeddings_input_list_is_read_as_its_lines() -> None:
    assert prompt_text({"input": ["first", "second"]}) == "first\nsecond"


def test_responses_input_as_messages() -> None:
    body = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "hola"}]}]}
    assert prompt_text(body) == "hola"


def test_anthropic_messages_take_their_system_prompt_from_beside_them() -> None:
    body = {
        "system": [{"type": "text", "text": "You are a Python expert."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "sort a dict"}]}],
    }
    assert prompt_text(body) == "sort a dict\n\nYou are a Python expert."


def test_an_agent_s_tool_results_are_not_taken_for_the_request() -> None:
    # Claude Code hands tool results back with a reminder beside them: the request is
    # still the user's, so the loop stays on the model that began it.
    body = {"messages": [
        {"role": "user", "content": "write a short poem about autumn and save it"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "Write", "input": {"path": "p.txt"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "written"},
            {"type": "text", "text": "<system-reminder>Summarize the todo list</system-reminder>"},
        ]},
    ]}
    assert prompt_text(body) == "write a short poem about autumn and save it"


def test_responses_take_their_instructions_as_the_system_prompt() -> None:
    body = {"instructions": "Answer as a poet.", "input": "the sea"}
    assert prompt_text(body) == "the sea\n\nAnswer as a poet."


def test_malformed_bodies_give_empty_text() -> None:
    weird: list[Any] = [
        None,
        3,
        "text",
        [],
        {},
        {"messages": None},
        {"messages": [None, 4, {"content": None}, {"content": 5}]},
        {"messages": [{"role": "user", "content": [None, 7, {"text": 3}]}]},
        {"prompt": [1, 2, 3]},
        {"input": {"nested": "dict"}},
    ]
    for body in weird:
        assert prompt_text(body) == ""


@given(json_values)
def test_any_json_value_never_raises(body: object) -> None:
    assert isinstance(prompt_text(body), str)


@given(shaped)
def test_any_body_shaped_like_a_request_never_raises(body: dict[str, Any]) -> None:
    assert isinstance(prompt_text(body), str)


def test_of_a_chat_of_thousands_of_messages_the_system_prompt_and_last_turn_are_read():
    messages = [{"role": "system", "content": "You are a Python expert."}]
    messages += [{"role": "user", "content": f"turn {i}"} for i in range(5000)]
    assert prompt_text({"messages": messages}) == "turn 4999\n\nYou are a Python expert."


def test_of_a_prompt_of_many_parts_only_the_first_are_read():
    parts = ["first words"] + ["more"] * (3 * MAX_ITEMS)
    assert prompt_text({"prompt": parts}).count("\n") == MAX_ITEMS - 1
