"""One ledger row: what a request used, as the gateway saw it end."""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    """A request's usage. Times are Unix seconds (time.time()).

    `key_name` is the client key's name from the config ("master" for MASTER_KEY),
    never the key itself. (`request_id`, `started`) identifies a row: a caller may reuse
    a request id, and a replayed batch must not add a row twice."""

    request_id: str
    key_name: str
    route: str
    model_group: str | None = None
    model: str | None = None
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    stream: bool = False
    disconnected: bool = False
    failovers: int = 0
    started: float
    first_byte: float | None = None
    ended: float
    usage_source: str = "none"
    """"reported" (the upstream's usage), "estimated" (a stream cut short, or one that
    reported none) or "none" (nothing was served)."""
    outcome: str = "ok"
    """How it ended, the access line's word: "ok", "client_gone", or what went wrong. A
    stream the upstream broke off is a 200 that is not "ok"."""
    cached_tokens: int = 0
    """Of prompt_tokens, those the provider read from its cache (OpenAI's cached_tokens,
    Anthropic's cache_read_input_tokens), as reported."""
    cache_write_tokens: int = 0
    """Of prompt_tokens, those written to the provider's cache (Anthropic's
    cache_creation_input_tokens), as reported."""
    reasoning_tokens: int = 0
    """Of completion_tokens, those the model reasoned in (OpenAI's reasoning_tokens)."""
    end_user: str | None = None
    """Who in the client's app the request was for, as its body said (OpenAI's `user` or
    `safety_identifier`, Anthropic's `metadata.user_id`); None when it said nothing."""
    team: str | None = None
    """The team whose limits the key was held to (`hxgw teams`, the keys file's `teams`);
    None for a key in none. A team's spend is its rows', whichever keys it had. A
    batch's row has its owner's team when it is billed, once it ended."""

    def values(self) -> tuple[Any, ...]:
        """The row's values in COLUMNS order."""
        return _VALUES(self)

    def as_dict(self) -> dict[str, Any]:
        return as_dict(self.values())


Values = tuple[Any, ...]
"""A row as the ledger keeps and writes it: its values in COLUMNS order. The request
path records these directly (`hxgw.pipeline.record_usage`): a UsageRow sets each of its
fields through object.__setattr__, which cost ten times as much as the tuple."""

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRow))
# One C call for a row's values: the writer thread holds the GIL while it builds them.
_VALUES = operator.attrgetter(*COLUMNS)


def as_dict(values: Values) -> dict[str, Any]:
    return dict(zip(COLUMNS, values, strict=True))


def stored_text(text: str, most: int) -> str:
    """A text from a client or an upstream as every store keeps it: its first `most`
    characters (it is theirs to make as long as they like), and a NUL written U+FFFD, as
    PostgreSQL refuses a text with one and the row would be lost."""
    kept = text[:most]
    return kept.replace("\x00", "\ufffd") if "\x00" in kept else kept
