"""Reading an upstream's `usage`, whatever its order and spacing."""

import pytest

from hxgw.pipeline.answer.usage_chunk import HiddenUsage
from hxgw.pipeline.billing.reported_usage import (
    MAX_TOKENS,
    last_usage,
    messages_usage,
    reported_tokens,
)


def test_tokens_are_read_from_a_usage_with_spaces_and_details():
    data = (b'"usage": {"prompt_tokens_details": {"cached_tokens": 4}, '
            b'"prompt_tokens" : 12, "completion_tokens":\n 7, "total_tokens": 19}')
    assert reported_tokens(data) == (12, 7)


def test_tokens_are_read_from_a_usage_that_names_completion_tokens_first():
    data = b'"usage":{"completion_tokens":9,"prompt_tokens":12,"total_tokens":21}}'
    assert reported_tokens(data) == (12, 9)


def test_tokens_are_read_from_a_usage_with_other_fields_between_the_counts():
    data = b'"usage":{"prompt_tokens":4,"total_tokens":10,"completion_tokens":6}'
    assert reported_tokens(data) == (4, 6)


def test_an_embeddings_usage_counts_its_prompt_tokens_alone():
    assert reported_tokens(b'"usage":{"prompt_tokens":30,"total_tokens":30}}') == (30, 0)


def test_a_usage_without_counts_is_none():
    assert reported_tokens(b'"usage":null}') is None


def test_an_anthropic_body_usage_counts_input_and_output_tokens():
    data = (b'"usage":{"input_tokens":25,"cache_creation_input_tokens":0,'
            b'"cache_read_input_tokens":0,"output_tokens":12}}')
    assert reported_tokens(data) == (25, 12)


def test_an_anthropic_stream_takes_input_from_its_start_and_output_from_its_last_delta():
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
             b'{"input_tokens":25,"output_tokens":1}}}\n\n')
    delta = (b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
             b'"end_turn"},"usage":{"output_tokens":15}}\n\n')
    assert reported_tokens(start + delta) == (25, 15)


def test_a_count_past_a_billion_tokens_is_taken_as_a_billion():
    data = b'"usage":{"prompt_tokens":18446744073709551616,"completion_tokens":5}'
    assert reported_tokens(data) == (MAX_TOKENS, 5)


def test_a_count_of_thousands_of_digits_is_read_without_converting_them_all():
    data = b'"usage":{"input_tokens":' + b"9" * 5000 + b',"output_tokens":3}'
    assert reported_tokens(data) == (MAX_TOKENS, 3)


USAGE_CHUNK = (b'data: {"id":"c","object":"chat.completion.chunk","choices": [],'
               b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}')
TEXT_CHUNK = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}'


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\r\r"])
def test_the_usage_chunk_alone_is_taken_out_of_a_block(end: bytes):
    block = TEXT_CHUNK + end + USAGE_CHUNK + end + b"data: [DONE]" + end
    assert HiddenUsage().strip(block) == TEXT_CHUNK + end + b"data: [DONE]" + end


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_an_event_of_several_lines_is_taken_out_whole(line_end: bytes):
    event = b"id: 7" + line_end + USAGE_CHUNK + line_end * 2
    text = TEXT_CHUNK + line_end * 2
    assert HiddenUsage().strip(text + event + text) == text + text


@pytest.mark.parametrize("choice", [
    b'{"index":0,"delta":{"content":"hi"}}',
    b'{"index":0,"delta":{},"finish_reason":"stop"}',
    b'{"index":0,"text":"hi"}',
])
def test_a_chunk_whose_choice_says_something_beside_a_usage_is_kept_without_it(choice: bytes):
    # Some upstreams put the usage on the finish chunk: the client had got it unasked.
    chunk = (b'data: {"choices":[' + choice + b'],'
             b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n')
    assert HiddenUsage().strip(chunk) == b'data: {"choices":[' + choice + b']}\n\n'


@pytest.mark.parametrize("choices", [b"", b'"choices":null,'])
def test_a_usage_chunk_without_choices_is_taken_out_whole(choices: bytes):
    # Its usage cut alone, the client had got a chunk with nothing in it.
    chunk = b'data: {"id":"c1",' + choices + b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    text = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    assert HiddenUsage().strip(text + chunk) == text


def test_a_chunk_s_other_lines_and_line_ends_stay_as_they_came_when_its_usage_is_cut():
    chunk = (b'id: 7\r\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
             b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\r\n\r\n')
    assert HiddenUsage().strip(chunk) == (
        b'id: 7\r\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\n')


def test_litellm_s_usage_chunk_with_an_empty_delta_is_taken_out():
    chunk = (b'data: {"choices":[{"index":0,"delta":{}}],'
             b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n')
    assert HiddenUsage().strip(TEXT_CHUNK + b"\n\n" + chunk) == TEXT_CHUNK + b"\n\n"


def test_a_usage_chunk_whose_blank_line_is_in_the_next_block_is_taken_out():
    assert HiddenUsage().strip(TEXT_CHUNK + b"\n\n" + USAGE_CHUNK + b"\n") == TEXT_CHUNK + b"\n\n"


def test_the_line_end_that_closes_the_event_before_the_block_is_kept():
    # The read before stopped between the two newlines of the text chunk's event.
    assert HiddenUsage().strip(b"\n" + USAGE_CHUNK + b"\n\n") == b"\n"


def test_of_a_running_usage_on_every_chunk_the_last_count_is_taken():
    data = b"".join(b'"usage":{"prompt_tokens":3,"completion_tokens":%d}\n\n' % n
                    for n in range(1, 401))
    assert reported_tokens(data) == (3, 400)


# A Responses answer repeats the request's tools (and text format) before its own usage:
# a client can put a usage of its own making there.
ECHOED = (b'data: {"type":"response.completed","response":{"tools":[{"type":"function",'
          b'"parameters":{"usage":{"prompt_tokens":0,"completion_tokens":0}}}],'
          b'"usage":{"input_tokens":1000,"output_tokens":2000,"total_tokens":3000},'
          b'"metadata":{}}}\n\n')


def test_a_usage_echoed_from_the_request_before_the_answer_s_own_is_not_believed():
    assert reported_tokens(ECHOED) == (1000, 2000)


def test_a_usage_named_in_metadata_after_the_answer_s_own_is_not_taken_for_it():
    body = (b'{"id":"resp_1","usage":{"input_tokens":1000,"output_tokens":2000},'
            b'"user":null,"metadata":{"usage":"x"}}')
    assert reported_tokens(last_usage(body)) == (1000, 2000)


def test_a_body_without_a_usage_object_has_none():
    assert last_usage(b'{"metadata":{"usage":"x"}}') == b""


# The first events of a Responses stream repeat the request's tools, then `"usage":null`.
CREATED = (b'event: response.created\ndata: {"type":"response.created","response":{"tools":'
           b'[{"type":"function","parameters":{"usage":{"input_tokens":0,"output_tokens":0}}}],'
           b'"usage":null,"metadata":{}}}\n\n')


def test_a_usage_echoed_before_the_answer_s_null_usage_is_no_usage():
    assert reported_tokens(CREATED) is None


def test_a_null_usage_in_a_later_event_leaves_the_usage_before_it():
    usage_chunk = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    later = b'data: {"choices":[{"index":0,"delta":{}}],"usage":null}\n\n'
    assert reported_tokens(usage_chunk + later) == (3, 2)


def test_anthropic_s_cached_prompt_counts_with_its_input_tokens():
    data = (b'"usage":{"input_tokens":5,"cache_creation_input_tokens":20000,'
            b'"cache_read_input_tokens":50000,"cache_creation":{"ephemeral_5m_input_tokens":'
            b'20000,"ephemeral_1h_input_tokens":0},"output_tokens":7}}')
    assert reported_tokens(data) == (70005, 7)


def test_a_stream_s_cached_prompt_is_counted_once_though_its_usage_repeats_it():
    start = (b'data: {"type":"message_start","message":{"usage":{"input_tokens":5,'
             b'"cache_read_input_tokens":50000,"output_tokens":1}}}\n\n')
    delta = (b'data: {"type":"message_delta","usage":{"input_tokens":5,'
             b'"cache_read_input_tokens":50000,"output_tokens":9}}\n\n')
    assert reported_tokens(start + delta) == (50005, 9)


@pytest.mark.parametrize(("reads", "kept"), [
    ([TEXT_CHUNK + b"\n\n" + USAGE_CHUNK + b"\n", b"\n", b"data: [DONE]\n\n"],
     TEXT_CHUNK + b"\n\ndata: [DONE]\n\n"),
    ([USAGE_CHUNK + b"\r", b"\n", b"\r", b"\n", b"data: [DONE]\r\n\r\n"],
     b"data: [DONE]\r\n\r\n"),
    ([USAGE_CHUNK + b"\r\n\r", b"\ndata: [DONE]\r\n\r\n"], b"data: [DONE]\r\n\r\n"),
    ([USAGE_CHUNK + b"\r", b"\r", b"data: [DONE]\r\r"], b"data: [DONE]\r\r"),
])
def test_a_usage_chunk_s_blank_line_in_later_reads_goes_with_it(reads: list[bytes], kept: bytes):
    hidden = HiddenUsage()
    assert b"".join(hidden.strip(block) for block in reads) == kept


# Anthropic's plain answers hold a tool's input as JSON the model wrote, which can name
# a usage and token counts of its own.
TOOL = b'{"type":"tool_use","input":{"usage":{"input_tokens":900,"output_tokens":800}}}'


def test_a_messages_usage_after_its_content_is_the_answer_s_own():
    body = (b'{"id":"m","content":[' + TOOL + b'],"stop_reason":"tool_use","usage":'
            b'{"input_tokens":25,"cache_creation":{"ephemeral_5m_input_tokens":0},'
            b'"output_tokens":12}}')
    assert reported_tokens(messages_usage(body, body, whole=True)) == (25, 12)


def test_a_messages_usage_before_its_content_is_found_in_the_answer_s_start():
    head = b'{"id":"m","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":34},'
    tail = b'"content":[' + TOOL + b'],"stop_reason":"tool_use"}'
    assert reported_tokens(messages_usage(head, tail, whole=False)) == (12, 34)


def test_a_messages_usage_between_nested_members_is_read_by_parsing_the_whole_answer():
    body = (b'{"id":"m","container":{"skills":[]},"usage":{"input_tokens":7,'
            b'"output_tokens":8},"content":[' + TOOL + b']}')
    assert reported_tokens(messages_usage(body, body, whole=True)) == (7, 8)


def test_a_messages_answer_whose_only_usage_is_a_tool_s_has_none():
    body = b'{"id":"m","content":[' + TOOL + b'],"usage":null}'
    assert messages_usage(body, body, whole=True) == b""
