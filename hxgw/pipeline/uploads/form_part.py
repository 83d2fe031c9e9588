"""A form part's head: the field name and file name its Content-Disposition gives.

Read strictly, as a form is routed by its `model` field: a head that another parser
could read as naming a different field is refused, not guessed at.
"""

from __future__ import annotations

import re

from hxgw.errors import BadRequest

TOKEN = re.compile(r"[0-9A-Za-z!#$%&'*+\-.^_`|~]+")
"""RFC 9110's token."""


def part_name(head: bytes) -> tuple[str | None, str | None]:
    """A part's field name and file name, from its Content-Disposition (one only: of
    two, the upstream might read the other, and name a part `model` unseen)."""
    found: tuple[str | None, str | None] | None = None
    for line in head.split(b"\r\n") if head else ():
        field, colon, value = line.partition(b":")
        if not colon:
            raise BadRequest("a part head of the form has a line that is not a header field")
        if b"\n" in line or b"\r" in line:  # a line end some parsers take, others not
            raise BadRequest("a part head of the form has a line end that is not CRLF")
        if field.strip().lower() == b"content-disposition":
            if found is not None:
                raise BadRequest("a part head of the form has more than one Content-Disposition")
            params = _disposition(value.decode("utf-8", "replace"))
            if "name*" in params:  # RFC 5987's form, which some parsers read as the name
                raise BadRequest("a part of the form is named with name*, not name")
            found = params.get("name"), params.get("filename", params.get("filename*"))
    return found or (None, None)


_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
"""RFC 9110's quoted-string: any character but a quote or a backslash, or one escaped."""
_DISPOSITION = re.compile(rf"[ \t]*{TOKEN.pattern}")
_PARAM = re.compile(rf"[ \t]*;[ \t]*({TOKEN.pattern})[ \t]*=[ \t]*({TOKEN.pattern}|{_QUOTED})")
_END = re.compile(r"[ \t]*;?[ \t]*")
_ESCAPED = re.compile(r"\\(.)")


def _disposition(value: str) -> dict[str, str]:
    """The parameters of a Content-Disposition (names lowercased, values unquoted), read
    by RFC 6266's grammar, or, off it only in its file name, by `_agreed`. Parsers read a
    malformed value each their own way (a stray quote, a token after a value, a repeated
    parameter): where aiohttp's found another field, Starlette's had read a second
    `name="model"`, the one an upstream keeps. So any other value is refused, as are a
    repeated parameter and a backslash in a name (which parsers unescape alike only in
    part)."""
    refused = BadRequest("a part head of the form has a Content-Disposition that cannot be read")
    try:
        return _strict(value, refused)
    except BadRequest:
        agreed = _agreed(value)
        if agreed is None:
            raise
        return agreed


def _strict(value: str, refused: BadRequest) -> dict[str, str]:
    found = _DISPOSITION.match(value)
    if found is None:
        raise refused
    at, params = found.end(), {}
    while (param := _PARAM.match(value, at)) is not None:
        name, given = param[1].lower(), param[2]
        if name in params:
            raise refused
        if given.startswith('"'):
            if name == "name" and "\\" in given:
                raise refused
            given = _ESCAPED.sub(r"\1", given[1:-1])
        params[name] = given
        at = param.end()
    if not _END.fullmatch(value, at):
        raise refused
    return params


def _agreed(value: str) -> dict[str, str] | None:
    """A value off the grammar only in its file name, as clients write some (node's
    form-data leaves its quotes, browsers and curl a final backslash): a plain `name`
    first, then `filename` last, whose text has nothing any parser could take for
    another name. None for any other."""
    found = _FILE_PART.fullmatch(value)
    if found is None or _NAMED.search(found[2]):
        return None
    return {"name": found[1], "filename": found[2]}


_FILE_PART = re.compile(
    r'[ \t]*form-data[ \t]*;[ \t]*name[ \t]*=[ \t]*"([^"\\;\r\n]*)"[ \t]*;'
    r'[ \t]*filename[ \t]*=[ \t]*"([^\r\n]*)"[ \t]*',
    re.IGNORECASE,
)
_NAMED = re.compile(r"name[ \t]*\*?[ \t]*=", re.IGNORECASE)
"""What a parser needs to find a `name` parameter (or `name*`) in a text."""
