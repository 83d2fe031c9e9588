"""Finding where a response head ends, and telling an interim answer from a final one."""

from __future__ import annotations

import pytest

from hxgw.upstream.head import head_end, is_interim

HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"


def test_a_crlf_head_ends_after_its_empty_line():
    assert head_end(bytearray(HEAD + b"{}"), 0) == len(HEAD)


def test_a_blank_lf_line_in_the_body_does_not_end_the_head():
    assert head_end(bytearray(HEAD + b"a\n\nb"), 0) == len(HEAD)


def test_a_head_with_bare_lf_line_ends_ends_at_its_blank_line():
    head = b"HTTP/1.1 200 OK\nContent-Length: 2\n\n"
    assert head_end(bytearray(head + b"{}"), 0) == len(head)


def test_an_unfinished_head_has_no_end_yet():
    assert head_end(bytearray(HEAD[:-2]), 0) == -1


@pytest.mark.parametrize(("line", "interim"), [
    (b"HTTP/1.1 100 Continue\r\n", True),
    (b"HTTP/1.1 103 Early Hints\r\n", True),
    (b"HTTP/1.1 102\r\n", True),
    (b"HTTP/1.1 101 Switching Protocols\r\n", False),  # refused by the parser instead
    (b"HTTP/1.1 200 OK\r\n", False),
    (b"HTTP/1.1 1000 Odd\r\n", False),
    (b"HTTP/1.1 1ab Odd\r\n", False),
])
def test_only_a_three_digit_1xx_but_101_is_interim(line: bytes, interim: bool):
    assert is_interim(bytearray(line + b"\r\n"), 0) is interim
