"""gateway.yaml's `upstreams`: where each upstream is, its key, and how much of it
the gateway may use at once (see hxgw.upstream.admission)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hxgw.config.gateway import GATEWAY
from hxgw.config.reader import (
    ENV_AT_START,
    IN_ENV_FILE,
    NOT_IN_A_HEADER,
    Section,
    fits_a_header,
)
from hxgw.config.schema import DEFAULT_UPSTREAM, Upstream
from hxgw.upstream import Origin

KEYS = frozenset({"url", "key_env", "max_concurrent", "max_queued", "queue_timeout"})


def read_upstreams(top: Section, env: Mapping[str, str]) -> Mapping[str, Upstream]:
    section = top.section("upstreams")
    raw: dict[str, Any] = dict(section.items()) or {DEFAULT_UPSTREAM: {}}
    default_key = env.get("HX_UPSTREAM_KEY") or env.get("MASTER_KEY") or None
    out: dict[str, Upstream] = {}
    for name, value in raw.items():
        entry = Section(GATEWAY, section.child(name), value, top.problems, KEYS)
        url = entry.string("url", "http://127.0.0.1:4000")
        # Where the URL came from is where the operator must fix it.
        place = (GATEWAY, entry.child("url"))
        if name == DEFAULT_UPSTREAM and env.get("HX_LITELLM_UPSTREAM"):
            url, place = env["HX_LITELLM_UPSTREAM"], ("environment", "HX_LITELLM_UPSTREAM")
        if "@" in _authority(url):
            # Never echoed: what is before the @ is a password. It would be shown on
            # /readyz and /status, and the client would not send it anyway.
            top.problems.add(
                *place,
                "must not carry credentials (user:password@); the upstream's key goes in"
                " the variable key_env names, sent as a bearer key",
            )
        elif not _is_http_url(url):
            bare = "://" not in url and _is_http_url(f"http://{url}")  # host:port, say
            hint = f": use {'http://' + url!r}" if bare else ""
            top.problems.add(*place, f"must be an http(s) URL, got {url!r}{hint}")
        elif url.rstrip("/").endswith("/v1"):
            # As an OpenAI SDK's base_url is written; every request would go to /v1/v1/...
            # and be refused with a 404 the probe could not tell from a model's.
            top.problems.add(
                *place,
                f"ends in /v1, which the gateway adds itself: "
                f"use {url.rstrip('/').removesuffix('/v1')!r}",
            )
        key_env = entry.string("key_env")
        if key_env and key_env not in env:
            entry.report(f"names {key_env!r}, which is not set{ENV_AT_START}", "key_env")
        key = (
            env.get(key_env) or None
            if key_env
            else default_key
            if name == DEFAULT_UPSTREAM
            else None
        )
        if key is not None and not fits_a_header(key):
            problem = f"has characters {NOT_IN_A_HEADER}"
            if key_env:
                entry.report(f"the upstream key from {key_env} {problem}", "key_env")
            elif env.get("HX_UPSTREAM_KEY"):  # the environment's, fixed there
                top.problems.add(
                    "environment", "HX_UPSTREAM_KEY", f"the upstream key {problem}{IN_ENV_FILE}"
                )
            # else MASTER_KEY's, said once, as the client key it is too (client_keys)
        base = Upstream(name=name, url="")
        out[name] = Upstream(
            name=name,
            url=url.rstrip("/"),
            key=key,
            max_concurrent=entry.number("max_concurrent", None, positive=True, integer=True),
            max_queued=entry.number("max_queued", base.max_queued, minimum=0, integer=True),
            queue_timeout=float(
                entry.number(
                    "queue_timeout", base.queue_timeout, minimum=0, maximum=3600, unit="seconds"
                )
            ),
        )
    return MappingProxyType(out)


def _authority(url: str) -> str:
    """The part between `scheme://` and the path, read without a parser that may raise."""
    return url.partition("://")[2].partition("/")[0].partition("?")[0]


def _is_http_url(url: str) -> bool:
    """Whether the gateway's client can reach `url`: the same parse it will use."""
    try:
        Origin.from_url(url)
    except ValueError:
        return False
    return True
