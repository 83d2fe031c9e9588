"""gateway.yaml's `limits_store` section: where the per-key limits live.

limits_store:
  url: redis://127.0.0.1:6379/0   # REDIS_URL overrides; none: memory
  fail_open: false                # Redis down: 503 (false) or count locally (true)
  timeout: 0.5                    # seconds to connect, and for a batch's answer
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from hxgw.config.reader import Section
from hxgw.config.schema import LimitsStore

MAX_TIMEOUT = 10.0
"""Longer, and a stalled Redis would hold every limited request for longer than a client
waits."""
REDIS_SCHEMES = ("redis", "rediss", "unix")
"""What redis-py connects to (Valkey speaks the same protocol under redis://)."""


def read_limits_store(top: Section, env: Mapping[str, str]) -> LimitsStore:
    section = top.section("limits_store", frozenset({"url", "fail_open", "timeout"}))
    url = section.string("url")
    if url is not None and not _is_redis_url(url):
        section.report(f"must be a {_REDIS_URL_FORM}, got {without_password(url)!r}", "url")
        url = None
    if env.get("REDIS_URL"):
        if _is_redis_url(env["REDIS_URL"]):
            url = env["REDIS_URL"]
        else:
            top.problems.add(
                "environment",
                "REDIS_URL",
                f"must be a {_REDIS_URL_FORM}, got {without_password(env['REDIS_URL'])!r}",
            )
    return LimitsStore(
        url=url,
        fail_open=section.boolean("fail_open", False),
        timeout=section.number("timeout", 0.5, positive=True, maximum=MAX_TIMEOUT, unit="seconds"),
    )


_REDIS_URL_FORM = "Redis URL (redis://host:port/db, rediss://... or unix:///path.sock)"


def _is_redis_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # an unmatched bracket reads as a broken IPv6 address
        return False
    if parts.scheme not in REDIS_SCHEMES:
        return False
    db = dict(parse_qsl(parts.query)).get("db", "0")
    if parts.scheme == "unix":
        return bool(parts.path) and db.isdigit()
    try:
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError:
        return False
    return bool(parts.hostname) and (parts.path.lstrip("/") or db).isdigit()


def without_password(url: str) -> str:
    """The URL as a message may show it: a password never reaches a log. Read by hand,
    not parsed: a password with an unencoded `/`, `#` or `?` is no valid URL, and the
    query may hold one too (`?password=`)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:  # user info, up to the last @: the password may hold the others
        userinfo, _, where = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{where}"
    return scheme + sep + _PASSWORD_FIELD.sub(r"\1***", rest)


_PASSWORD_FIELD = re.compile(r"(?i)((?:^|[?&;])password=)[^&;#]*")
