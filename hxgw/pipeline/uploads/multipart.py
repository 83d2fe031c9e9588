"""Find the `model` field of a multipart/form-data body as it streams past, and refuse
the fields that would steer LiteLLM (hxgw.pipeline.shapes.STEERING) wherever they are.

An upload goes to the upstream byte for byte, but for the value of its `model`
field, which becomes the chosen model's upstream id. So the body is not parsed
into parts: this scanner only follows the boundaries and reads each part's
head, hands back the bytes it is done with as it goes, and stops at the end of
the `model` value; another (`ModelField.after_model`) watches the bytes after it.

Why not aiohttp's MultipartReader: it hands out each part's decoded content,
not the bytes as they came, so forwarding with it means writing every part
again (new framing, and a length known only at the end). aiohttp's own parser
reads the Content-Type (`parse_mimetype`); a part's head is read more strictly
(hxgw.pipeline.uploads.form_part).
"""

from __future__ import annotations

import re
from typing import Literal

from aiohttp.helpers import parse_mimetype

from hxgw.errors import BadRequest
from hxgw.pipeline.shapes import FILE_ROUTING, STEERING, steering
from hxgw.pipeline.uploads.form_part import TOKEN, part_name

MAX_BOUNDARY = 70
"""RFC 2046's longest boundary."""
MAX_PART_HEAD = 16 * 1024
"""The most bytes a part's head may take (a preamble too): a form's are a line or two."""
MAX_MODEL = 1024
"""The longest `model` value taken: a group's or a model's name."""
MAX_PADDING = 64
"""Spaces RFC 2046 allows after a boundary, before its line end."""

State = Literal["start", "delimited", "head", "content", "model", "found", "end"]


BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
"""RFC 2046's boundary: 1 to 70 of its characters, not ending in a space."""


def form_boundary(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type (quoted or not); a 400 for
    any other type, or one without a boundary that every parser reads alike: the
    upstream's may take the last of two where aiohttp takes the first, or read a
    backslash in quotes as an escape, and find another form, with another `model`, in
    the same bytes."""
    mime = parse_mimetype(content_type or "")
    if (mime.type, mime.subtype) != ("multipart", "form-data"):
        given = f"{mime.type}/{mime.subtype}" if mime.type else "no Content-Type"
        raise BadRequest(f"this route takes a multipart/form-data body, got {given}")
    boundaries = mime.parameters.getall("boundary", ())
    if len(boundaries) != 1 or not BOUNDARY.fullmatch(boundaries[0]):
        raise BadRequest(
            "the multipart/form-data Content-Type needs one boundary parameter of 1 to "
            f"{MAX_BOUNDARY} of the characters RFC 2046 allows (letters, digits and "
            "'()+_,-./:=? or a space not at its end)"
        )
    return boundaries[0].encode("ascii")


def form_content_type(boundary: bytes) -> str:
    """The Content-Type an upload goes upstream with: the gateway's own, naming only the
    boundary it read the form by."""
    text = boundary.decode("ascii")
    quoted = text if TOKEN.fullmatch(text) else '"' + text + '"'  # RFC 2046's may need quotes
    return f"multipart/form-data; boundary={quoted}"


class ModelField:
    """Scans a form body fed to it in pieces for its `model` field.

    `feed` returns the bytes it is done with, all of them before the model's
    value; once that value is whole, `value` holds it and `rest` the bytes that
    followed it. So what was fed is always: what `feed` returned, then `value`,
    then `rest` (or, at the end of a body without the field, what `finish`
    returns).
    """

    __slots__ = (
        "_buffer",
        "_dash",
        "_delimiter",
        "_finds_model",
        "_refused",
        "_searched",
        "first_at",
        "rest",
        "seen",
        "state",
        "value",
    )

    def __init__(self, boundary: bytes) -> None:
        self._dash = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray()
        self._searched = 0
        """How far the buffer has been searched for a part head's end (keeps it linear)."""
        self.state: State = "start"
        self.seen = 0
        """Bytes handed back so far."""
        self.first_at = 0
        """Where the first boundary starts: what comes before it is a preamble."""
        self.value: bytes | None = None
        self.rest = b""
        self._finds_model = True
        self._refused = STEERING

    @classmethod
    def after_model(cls, boundary: bytes) -> ModelField:
        """A scanner for the bytes that follow the `model` value: it raises a 400 on a
        second `model` field, which the upstream would take (a form parser keeps the
        last value of a field) instead of the one the gateway chose."""
        scanner = cls(boundary)
        scanner.state, scanner.value = "content", b""
        return scanner

    @classmethod
    def watching(cls, boundary: bytes) -> ModelField:
        """A scanner for a whole form that names no model (a file's): it only refuses
        the fields that steer LiteLLM, its files' too (FILE_ROUTING)."""
        scanner = cls(boundary)
        scanner._finds_model, scanner._refused = False, STEERING | FILE_ROUTING
        return scanner

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the body; return those it is done with."""
        self._buffer += data
        out = bytearray()
        while self._step(out):
            pass
        self.seen += len(out)
        return bytes(out)

    def finish(self) -> bytes:
        """The body ended: the bytes still held (an epilogue), or a 400 if the form is
        not complete."""
        if self.state == "start" and not self._buffer and not self.seen:
            raise BadRequest("the request body is empty: expected a multipart/form-data form")
        if self.state != "end":
            raise BadRequest("the multipart form ended before its closing boundary")
        held, self._buffer = bytes(self._buffer), bytearray()
        self.seen += len(held)
        return held

    def _pass(self, out: bytearray, count: int) -> None:
        out += self._buffer[:count]
        del self._buffer[:count]
        self._searched = 0

    def _step(self, out: bytearray) -> bool:
        """One move of the state machine; False when it needs more bytes."""
        buffer, state = self._buffer, self.state
        if state == "start":
            if buffer.startswith(self._dash):
                self._pass(out, len(self._dash))
                self.state = "delimited"
                return True
            if len(buffer) < len(self._dash) and self._dash.startswith(buffer):
                return False
            at = buffer.find(self._delimiter)
            if at < 0 or at > MAX_PART_HEAD:
                if at < 0 and len(buffer) <= MAX_PART_HEAD:
                    return False
                raise BadRequest("the body does not start with its form's boundary")
            self.first_at = self.seen + len(out) + at + 2  # after the preamble's CRLF
            self._pass(out, at + len(self._delimiter))
            self.state = "delimited"
            return True
        if state == "delimited":
            return self._after_delimiter(out)
        if state == "head":
            return self._part_head(out)
        if state in ("content", "model"):
            at = buffer.find(self._delimiter)
            if state == "model":
                return self._model_value(at)
            if at < 0:
                # Hold back what may be the start of a boundary cut by the read.
                keep = len(self._delimiter) - 1
                if len(buffer) > keep:
                    self._pass(out, len(buffer) - keep)
                return False
            self._pass(out, at + len(self._delimiter))
            self.state = "delimited"
            return True
        if state == "end" and buffer:
            self._pass(out, len(buffer))  # the epilogue, passed as it came
        return False

    def _after_delimiter(self, out: bytearray) -> bool:
        """After a boundary: `--` closes the form, a line end starts the next part."""
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer.startswith(b"--"):
            self._pass(out, 2)
            self.state = "end"
            return True
        end = buffer.find(b"\r\n", 0, MAX_PADDING + 2)
        if end < 0:
            if len(buffer) < MAX_PADDING + 2 and not buffer.strip(b" \t"):
                return False
            raise BadRequest("a boundary line of the form has more after the boundary")
        if buffer[:end].strip(b" \t"):
            raise BadRequest("a boundary line of the form has more after the boundary")
        self._pass(out, end + 2)
        self.state = "head"
        return True

    def _part_head(self, out: bytearray) -> bool:
        buffer = self._buffer
        if buffer.startswith(b"\r\n"):
            end = 0  # a part without header fields
        else:
            end = buffer.find(b"\r\n\r\n", max(0, self._searched - 3))
            if end < 0:
                if len(buffer) > MAX_PART_HEAD:
                    raise BadRequest(f"a part head of the form is over {MAX_PART_HEAD} bytes")
                self._searched = len(buffer)
                return False
        name, filename = part_name(bytes(buffer[:end]))
        if name in self._refused:  # LiteLLM reads a form's fields as a JSON body's
            raise steering(name)
        self._pass(out, end + (2 if end == 0 else 4))
        if name == "model" and filename is not None:
            # An upstream's form reads it as the model all the same (Starlette's does).
            raise BadRequest(
                "the form's 'model' field is a file: send it as a plain field", param="model"
            )
        self.state = "model" if name == "model" and self._finds_model else "content"
        if self.state == "model" and self.value is not None:
            raise BadRequest("the form has more than one 'model' field", param="model")
        return True

    def _model_value(self, at: int) -> bool:
        buffer = self._buffer
        if at < 0:
            if len(buffer) > MAX_MODEL + len(self._delimiter):
                raise BadRequest(
                    f"the form's 'model' field is over {MAX_MODEL} bytes", param="model"
                )
            return False
        if at > MAX_MODEL:
            raise BadRequest(f"the form's 'model' field is over {MAX_MODEL} bytes", param="model")
        self.value, self.rest = bytes(buffer[:at]), bytes(buffer[at:])
        self._buffer = bytearray()
        self.state = "found"
        return False
