"""The sections of gateway.yaml (and the environment that overrides them), read and checked.

Each reader takes the file's top `Section`, reports every mistake to its
problems with the key path, and returns a frozen value (a default where the
value was wrong, so that every problem of a file is found in one pass).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from hxgw.config.body_limits import FAMILY_LIMITS
from hxgw.config.reader import ENV_AT_START, Section, kind_of
from hxgw.config.schema import (
    BadKeyPolicy,
    Limits,
    Listen,
    Logging,
    MetricsAccess,
    Network,
    ReadinessProbe,
    Timeouts,
    Tls,
    key_digest,
)

GATEWAY = "gateway.yaml"
LOG_LEVELS = ("debug", "info", "warning", "error")


def read_metrics_access(top: Section, env: Mapping[str, str]) -> MetricsAccess:
    section = top.section("metrics", frozenset({"auth", "key_env"}))
    key_env = section.string("key_env")
    key = env.get(key_env) if key_env else None
    if key_env and not key:
        section.report(f"names {key_env!r}, which is not set{ENV_AT_START}", "key_env")
    return MetricsAccess(
        auth=section.boolean("auth", True),
        key_digest=key_digest(key) if key else None,
    )


def read_workers(value: Any, top: Section) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
        top.report(f"must be a number of processes (1-256) or auto, got {value!r}", "workers")
        return 1
    return value


def read_cors(top: Section) -> tuple[str, ...]:
    """The origins a browser page may call the API from, `*` for any (as OpenAI's API
    allows): a key is a bearer token the page sends itself, never a credential the
    browser adds, so `*` lends a foreign page nothing. `[]`: no CORS at all."""
    section = top.section("cors", frozenset({"allow_origins"}))
    origins = section.str_list("allow_origins", ("*",))
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not rest or "/" in rest):
            section.report(
                f"must be * or an origin such as https://chat.example.com, got {origin!r}",
                "allow_origins",
            )
    return origins


LEDGER_CLOSE_TIMEOUT = 10.0
"""The most stopping waits for the ledger's last batch (to the store, or the spool)."""
STOP_AFTER_DRAIN = LEDGER_CLOSE_TIMEOUT + 5.0
"""The most a stop takes after its drain: the cut requests' error events and records
(a second or two), then the ledger's last batch."""
UNIT_STOP_TIMEOUT = 45.0
"""The shipped unit's TimeoutStopSec, after which systemd kills what is left."""


def read_drain_timeout(top: Section) -> float:
    section = top.section("shutdown", frozenset({"drain_timeout"}))
    return float(section.number("drain_timeout", 20.0, minimum=0, maximum=3600, unit="seconds"))


def read_readiness(top: Section) -> ReadinessProbe:
    probe = top.section("readiness", frozenset({"interval", "stale_after", "max_loop_lag"}))
    base = ReadinessProbe()
    interval = float(probe.number("interval", base.interval, positive=True, unit="seconds"))
    stale_after = float(
        probe.number("stale_after", base.stale_after, positive=True, unit="seconds")
    )
    if stale_after <= interval:
        # An idle gateway hears from its upstream once an interval: /readyz would say
        # "no upstream answered" between probes, and a load balancer pull it.
        probe.report(
            f"must be longer than readiness.interval ({interval:g} s), or an idle gateway "
            f"is unready between its probes: give it at least {3 * interval:g} s",
            "stale_after",
        )
        stale_after = max(base.stale_after, 3 * interval)
    return ReadinessProbe(
        interval=interval,
        stale_after=stale_after,
        max_loop_lag=float(
            probe.number("max_loop_lag", base.max_loop_lag, minimum=0, unit="seconds")
        ),
    )


AUTH_KEYS = frozenset(
    {
        "keys_file",
        "per_user",
        "max_bad_keys",
        "bad_key_window",
        "bad_key_lockout",
        "trusted_proxies",
    }
)


def read_bad_key_policy(top: Section) -> BadKeyPolicy:
    section = top.section("auth", AUTH_KEYS)
    base = BadKeyPolicy()
    return BadKeyPolicy(
        max_failures=section.number("max_bad_keys", base.max_failures, positive=True, integer=True),
        window=float(section.number("bad_key_window", base.window, positive=True, unit="seconds")),
        lockout=float(section.number("bad_key_lockout", base.lockout, minimum=0, unit="seconds")),
        trusted_proxies=_networks(section, "trusted_proxies"),
    )


def _networks(section: Section, name: str) -> tuple[Network, ...]:
    """A list of addresses or CIDR networks, e.g. [127.0.0.1, 10.0.0.0/8]."""
    given = section.raw(name)
    if given is None:
        return ()
    if not isinstance(given, list):
        section.report(f"must be a list of addresses or networks, got {kind_of(given)}", name)
        return ()
    networks = []
    for index, entry in enumerate(given):
        try:
            networks.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            section.report(f"not an address or network: {entry!r}", f"{name}[{index}]")
    return tuple(networks)


def read_tls(top: Section, directory: Path) -> Tls | None:
    if not top.has("tls"):
        return None
    section = top.section("tls", frozenset({"cert", "key"}))
    cert, key = section.string("cert", required=True), section.string("key", required=True)
    if cert is None or key is None:
        return None
    tls = Tls(cert=directory / cert, key=directory / key)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        # An OSError names no file ("[Errno 2] No such file or directory"): say which.
        files = f"{tls.cert} and {tls.key}"
        section.report(f"cannot load the certificate and key from {files}: {exc}")
        return None
    return tls


def read_listen(top: Section, env: Mapping[str, str]) -> Listen:
    section = top.section("listen", frozenset({"host", "port"}))
    host = env.get("HX_HOST") or section.string("host", "0.0.0.0")
    problem = _host_problem(host)
    if problem:
        place = ("environment", "HX_HOST") if env.get("HX_HOST") else (GATEWAY, "listen.host")
        top.problems.add(*place, problem)
    port = section.number("port", 4010, minimum=0, maximum=65535, integer=True)
    given = env.get("HX_PORT")
    if given:
        if given.isascii() and given.isdigit() and int(given) <= 65535:
            port = int(given)
        else:
            top.problems.add(
                "environment", "HX_PORT", f"must be a port number (0-65535), got {given!r}"
            )
    return Listen(host=host, port=port)


def _host_problem(host: str) -> str | None:
    """What keeps `host` from being an address to listen on: a name or an IP address,
    without a port or a scheme, which would pass until `serve` failed to resolve it."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if "://" in host or "/" in host:
        return f"must be an address (a name or an IP), not a URL: got {host!r}"
    if host.startswith("[") or ":" in host:
        bare = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0]
        return (
            "must be a bare address, without brackets or a port (the port is listen.port, "
            f"or HX_PORT): use {bare!r}"
        )
    if not host.isascii() or not host.replace("-", "").replace(".", "").isalnum():
        return f"must be a host name or an IP address, got {host!r}"
    return None


def read_timeouts(top: Section) -> Timeouts:
    section = top.section(
        "timeouts", frozenset({"connect", "first_byte", "answer", "idle", "total"})
    )
    base = Timeouts()
    return Timeouts(
        connect=float(section.number("connect", base.connect, positive=True, unit="seconds")),
        first_byte=float(
            section.number("first_byte", base.first_byte, positive=True, unit="seconds")
        ),
        answer=float(section.number("answer", base.answer, positive=True, unit="seconds")),
        idle=float(section.number("idle", base.idle, positive=True, unit="seconds")),
        total=float(section.number("total", base.total, positive=True, unit="seconds")),
    )


def read_limits(top: Section) -> Limits:
    sizes = {limit.key for limit in FAMILY_LIMITS.values()}
    section = top.section(
        "limits",
        frozenset(
            {
                *sizes,
                "upstream_connections",
                "client_idle_timeout",
                "body_timeout",
                "connections_per_address",
            }
        ),
    )
    base = Limits()
    size = {
        key: section.number(key, getattr(base, key), positive=True, integer=True)
        for key in sorted(sizes)
    }
    return Limits(
        max_body_bytes=size["max_body_bytes"],
        max_audio_bytes=size["max_audio_bytes"],
        max_image_bytes=size["max_image_bytes"],
        max_file_bytes=size["max_file_bytes"],
        upstream_connections=section.number(
            "upstream_connections", None, positive=True, integer=True
        ),
        client_idle_timeout=float(
            section.number(
                "client_idle_timeout", base.client_idle_timeout, positive=True, unit="seconds"
            )
        ),
        body_timeout=float(
            section.number("body_timeout", base.body_timeout, positive=True, unit="seconds")
        ),
        connections_per_address=section.number(
            "connections_per_address", base.connections_per_address, positive=True, integer=True
        ),
    )


def read_logging(top: Section, env: Mapping[str, str]) -> Logging:
    section = top.section("logging", frozenset({"level", "format", "access_log"}))
    # Either case, as LOG_LEVEL takes it (the env file's example says INFO).
    level = section.choice("level", "info", LOG_LEVELS, fold_case=True)
    if env.get("LOG_LEVEL"):
        wanted = env["LOG_LEVEL"].lower()
        if wanted not in LOG_LEVELS:
            top.problems.add(
                "environment",
                "LOG_LEVEL",
                f"must be one of {', '.join(LOG_LEVELS)}, got {env['LOG_LEVEL']!r}",
            )
        else:
            level = wanted
    fmt = section.choice("format", "kv", ("kv", "json"))
    return Logging(
        level=level,
        format="json" if fmt == "json" else "kv",
        access_log=section.boolean("access_log", True),
    )
