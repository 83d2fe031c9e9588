"""A list's query (files, batches), read as their APIs take it: the page size (`limit`),
whether newest first (`order`), each given once. Read for every key's list: a key's own
are paged by the gateway (hxgw.pipeline.owners), the master key's go upstream as asked."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl

from hxgw.endpoints import Listing
from hxgw.errors import BadRequest


class Asked(NamedTuple):
    """A list's query, as the client gave it and as the gateway reads it."""

    given: list[tuple[str, str]]
    wanted: int
    """The page size."""
    newest_first: bool
    most: int
    """The largest page the upstream's API gives."""


def page_asked(query: str, listing: Listing) -> Asked:
    """A list's query; a 400 for a limit or order no API takes."""
    given = parse_qsl(query, keep_blank_values=True)
    wanted = _wanted(given, listing.default, listing.most)
    return Asked(given, wanted, _newest_first(given, listing), listing.most)


def _wanted(given: list[tuple[str, str]], default: int, most: int) -> int:
    """The page size the client asked for."""
    refusal = BadRequest(f"limit must be a whole number from 1 to {most}", param="limit")
    limit = _once(given, "limit", refusal)
    if limit is None:
        return default
    digits = limit.isascii() and limit.isdigit() and len(limit) <= 9  # int() of 5000 raises
    if not digits or not 1 <= int(limit) <= most:
        raise refusal
    return int(limit)


def _newest_first(given: list[tuple[str, str]], listing: Listing) -> bool:
    """Files may be listed oldest first (`order=asc`); batches are newest first."""
    if not listing.ordered:
        return True
    refusal = BadRequest("order must be 'asc' or 'desc', given once", param="order")
    order = _once(given, "order", refusal)
    if order not in (None, "asc", "desc"):
        raise refusal
    return order != "asc"


def _once(given: list[tuple[str, str]], param: str, refusal: BadRequest) -> str | None:
    """The value of a query parameter that may be given once; None when it is not."""
    values = [value for name, value in given if name == param]
    if len(values) > 1:
        raise refusal
    return values[0] if values else None
