"""Where a relayed stream stands against its end, block by block of whole lines: whether
its answer is whole, whether anything more is to come, and where in a block it ended
(what follows is no part of it). The tests of each block are hxgw.pipeline.answer.stream_end's.
"""

from __future__ import annotations

from typing import Any

from hxgw.endpoints import Endpoint
from hxgw.pipeline.answer.stream_end import (
    FINAL,
    done_event_end,
    ends_stream,
    event_end,
    failed_upstream,
    final_event_end,
    finished_choices,
    named_alone,
    said_done,
    through_final,
)
from hxgw.pipeline.billing.usage import choices
from hxgw.routing.prompt_size import asked


class EndWatch:
    """One stream's end, as its blocks are seen (`see`)."""

    __slots__ = ("done", "ended", "endpoint", "more_after_final", "named_only", "unfinished")

    def __init__(self, endpoint: Endpoint, body: dict[str, Any] | None) -> None:
        self.endpoint = endpoint
        self.ended = endpoint not in FINAL
        """Whether the answer is whole: its final event came, or every choice said why it
        stopped; a route with no final event is whole however it ends."""
        # Some servers (llama.cpp's forks, mistral.rs, text-generation-webui) send no
        # [DONE]: their stream is whole once every choice has said why it stopped.
        self.unfinished = choices(body, endpoint) if endpoint.choices and body is not None else 0
        self.done = False
        """Whether nothing more is to come: the final event itself, or a `[DONE]` once the
        answer was whole. Past it, the body's end is waited for a moment at most, what
        comes after its event is not relayed, and a failure gets no error event (the
        client has the whole answer)."""
        self.named_only = False
        """The final event's `event:` line came, its data not yet: neither whole nor done."""
        copies = asked(body.get("n")) if endpoint.copies and body is not None else 1
        self.more_after_final = copies > 1
        """Several images asked for in one stream: whether OpenAI sends a final event for
        each is not documented, so the first one makes the answer whole but not done, and
        what follows it is relayed until the upstream ends the stream."""

    def see(self, block: bytes, lines: int, tail: bytes) -> tuple[int | None, bool]:
        """Take in a block of whole lines holding `lines` data lines, after a stream whose
        last bytes were `tail`: where in it the event that ends the stream ends (None: not
        in it), and whether that event is the upstream's error."""
        end, failed = None, False
        # The final event's `event:` line may come before its data, which may be long and
        # come in pieces (HeldLine): the stream is whole once it begins.
        if self.named_only and lines:
            self.named_only = False
            self.ended, self.done = True, not self.more_after_final
            if self.done:
                # Not at the LF of a CRLF whose CR ended the `event:` line: no blank line.
                end = event_end(block, int(tail.endswith(b"\r") and block[:1] == b"\n"))
        elif not self.ended and not self.named_only and (lines or b"event:" in block):
            final = FINAL[self.endpoint]
            if ends_stream(block, self.endpoint):
                through = through_final(block, final)
                failed = failed_upstream(through, final)
                self.named_only = named_alone(through, block)
                self.ended = not self.named_only
                self.done = self.ended and (failed or not self.more_after_final)
                if self.done:
                    end = final_event_end(block, through)
            if self.unfinished and not self.ended:
                self.unfinished -= finished_choices(block)
                self.ended = self.unfinished <= 0
        if lines and self.ended and not self.done:
            self.done = said_done(block)
            end = done_event_end(block) if self.done else None
        return end, failed
