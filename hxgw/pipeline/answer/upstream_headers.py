"""The headers a client sees on a relayed answer: the upstream's that may pass,
and the gateway's own."""

from __future__ import annotations

from hxgw.memo import Memo
from hxgw.pipeline.context import Reply, RequestContext
from hxgw.upstream import UpstreamResponse

# Upstream response headers a client may see; everything else (hop-by-hop,
# server software, upstream spend and key details) stays behind the gateway.
PASSED_RESPONSE_HEADERS = {
    name.lower().encode(): name
    for name in (
        "Content-Type",
        # Sent despite the gateway's Accept-Encoding: identity, it must still label the body.
        "Content-Encoding",
        "Retry-After",
        "retry-after-ms",
        "OpenAI-Processing-Ms",
        "OpenAI-Version",
        # The OpenAI and Anthropic SDKs obey it before their own rules on retrying.
        "x-should-retry",
    )
}
PASSED_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")
"""The upstream's rate limits, OpenAI's and Anthropic's (a key with limits of its own gets
its `x-ratelimit-*` from the gateway in their place)."""


def _client_name_of(raw_name: bytes) -> str | None:
    """The name a client sees an upstream header under, or None when it stays behind."""
    lowered = raw_name.lower()
    name = PASSED_RESPONSE_HEADERS.get(lowered)
    if name is None and lowered.startswith(PASSED_PREFIXES):
        name = raw_name.decode("latin-1")
    return name


# Asked once per spelling: an upstream sends the same names on every response, and
# lowering and matching each one cost about 2k instructions a header.
_client_name = Memo(_client_name_of, 256)


def passed_headers(response: UpstreamResponse) -> dict[str, str]:
    """The upstream's headers a client may see, under the names it sees them by."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in response.raw_headers:
        name = _client_name[raw_name]
        if name is not None and name not in headers:  # the first of a repeated header
            # aiohttp writes header values as UTF-8: read as latin-1, "é" came out as "Ã©".
            headers[name] = raw_value.decode("utf-8", "replace")
        elif name == "Content-Encoding":  # a list: the client decodes by all of it
            headers[name] += ", " + raw_value.decode("utf-8", "replace")
    return headers


def response_headers(ctx: RequestContext, reply: Reply) -> dict[str, str]:
    headers = passed_headers(reply.response)
    headers["X-Request-ID"] = ctx.request_id
    if ctx.speaks_anthropic():
        headers["request-id"] = ctx.request_id  # what Anthropic's SDK reads as the request id
    headers["X-HX-Model"] = reply.model.name
    route_headers(ctx, headers)
    if ctx.limit_headers:
        headers = with_key_limits(headers, ctx.limit_headers)
    return headers


def route_headers(ctx: RequestContext, headers: dict[str, str]) -> None:
    """Where the request went, in `headers`: its group, how many times it failed over, and
    the route's X-HX-Route; on an answer relayed, and on the gateway's own error after
    routing (every candidate failed)."""
    if ctx.group:
        headers["X-HX-Group"] = ctx.group
    headers["X-HX-Failovers"] = str(ctx.failovers)
    if ctx.decision is not None:
        headers["X-HX-Route"] = ctx.decision.header()


RATE_LIMIT_PREFIXES = tuple(prefix.decode() for prefix in PASSED_PREFIXES)


def with_key_limits(headers: dict[str, str], key_limits: dict[str, str]) -> dict[str, str]:
    """An answer's headers with a limited key's rate-limit headers in place of the
    upstream's, all of them: the gateway's account's figures beside the key's would read
    as the key's, and tell one client of the others' use."""
    kept = {k: v for k, v in headers.items() if not k.lower().startswith(RATE_LIMIT_PREFIXES)}
    kept.update(key_limits)
    return kept
