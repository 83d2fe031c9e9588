"""`hxgw smoke --url URL`: the seed's smoke suite, against a running gateway.

Checks liveness, readiness, the model list, a deterministic chat, a streamed
chat, embeddings, and one request per configured group; prints each result with
its time (and the request id to grep the gateway's log for on failure), then the
success rate. Exit 0 when every check passed, 1 when any failed, 2 on bad usage.

The key comes from MASTER_KEY or --key-file: the file is read as raw text,
never executed or sourced, and the key is never taken from the command line
(where `ps` shows it) nor printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import stat
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import aiohttp

from hxgw.config.gateway import read_listen
from hxgw.config.reader import Problems, Section
from hxgw.config.store import GATEWAY
from hxgw.config.yaml_file import read_yaml
from hxgw.tools.smoke_checks import Result, Smoke

_ENV_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


class UsageError(Exception):
    """Bad arguments or an unusable key: exit 2."""


def read_key(key_file: str | None, env: Mapping[str, str]) -> str:
    """The client key, from --key-file (raw text, stripped) or else MASTER_KEY."""
    if key_file is None:
        key = env.get("MASTER_KEY", "").strip()
        if not key:
            raise UsageError("no key: set MASTER_KEY or pass --key-file PATH")
        return key
    try:
        if os.stat(key_file).st_mode & stat.S_IROTH:
            print(
                f"hxgw smoke: warning: {key_file} is readable by every user; chmod 600 it",
                file=sys.stderr,
            )
        with open(key_file, encoding="utf-8") as file:
            key = file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the key file {key_file}: {exc}") from None
    if not key or any(c.isspace() or not c.isprintable() for c in key) or _ENV_LINE.match(key):
        raise UsageError(f"{key_file} must hold the key alone on one line (not an env file)")
    return key


async def run_checks(url: str, key: str, seconds_per_request: float) -> list[Result]:
    timeout = aiohttp.ClientTimeout(total=seconds_per_request)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await Smoke(session, url, key).run()


def report(url: str, results: Sequence[Result], as_json: bool) -> str:
    ran = [r for r in results if r.result != "skip"]
    passed = sum(r.result == "ok" for r in ran)
    rate = 100.0 * passed / len(ran) if ran else 0.0
    skipped = len(results) - len(ran)
    if as_json:
        summary = {"url": url, "ok": passed == len(ran), "passed": passed, "total": len(ran)}
        checks = [asdict(r) | {"seconds": round(r.seconds, 4)} for r in results]
        summary |= {"skipped": skipped, "success_rate": round(rate, 1), "checks": checks}
        return json.dumps(summary, indent=2)
    lines = [f"hxgw smoke: {url}"]
    for r in results:
        took = "-" if r.result == "skip" else f"{r.seconds * 1000:.0f} ms"
        lines.append(f"  {r.result:<4}  {r.name:<28} {took:>8}  {r.detail}".rstrip())
    tail = f", {skipped} skipped" if skipped else ""
    lines.append(f"{passed}/{len(ran)} checks passed ({rate:.1f}%){tail}")
    return "\n".join(lines)


def _check_url(url: str) -> None:
    """A URL no request can be sent to is bad usage, said once with its reason, not a
    failed check each: aiohttp's InvalidURL names only the URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:  # a port past 65535, an IPv6 address without its ]
        raise UsageError(f"--url {url!r}: {exc}") from None
    if not host:
        raise UsageError(f"--url {url!r} names no host")


def default_url(config_dir: str, env: Mapping[str, str]) -> str:
    """The gateway of `config_dir` on this machine, where `serve` listens: HX_HOST and
    HX_PORT, else gateway.yaml's `listen` (https where it has `tls`), else the defaults.
    Only that section is read: the rest of the config need not load in this shell."""
    problems = Problems()
    doc = read_yaml(Path(config_dir) / GATEWAY, problems, [], required=False)
    top = Section(GATEWAY, "", doc, problems)
    listen = read_listen(top, env)
    if problems.messages:  # unreadable here (/etc/hxgw is 0750): what is left is a guess
        print(f"hxgw smoke: note: {problems.messages[0]}", file=sys.stderr)
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "::") else listen.host  # any address
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if top.has('tls') else 'http'}://{host}:{listen.port}"


def run(args: argparse.Namespace, config_dir: str, env: Mapping[str, str]) -> int:
    given = args.url or default_url(config_dir, env)
    url = given.rstrip("/").removesuffix("/v1")
    try:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--url must start with http:// or https://, got {url!r}")
        _check_url(url)
        key = read_key(args.key_file, env)
    except UsageError as exc:
        print(f"hxgw smoke: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(run_checks(url, key, args.timeout))
    print(report(url, results, args.json))  # each check's note is redacted where it is made
    if any(r.detail.startswith("HTTP 401") for r in results):
        print(
            "hxgw smoke: the gateway refused the key: give the one it serves with (MASTER_KEY,"
            " or --key-file; `make run` prints the one it keeps)",
            file=sys.stderr,
        )
    return 1 if any(r.result == "FAIL" for r in results) else 0
