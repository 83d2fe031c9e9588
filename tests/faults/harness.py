"""What the fault suite measures: how each request ended, and what the gateway kept.

A request ends one of four ways:
- ok: the complete answer (a plain JSON body, or a stream that ends with `data: [DONE]`);
- clean: a well-formed error: an OpenAI error body with a 4xx/5xx status, a stream that
  ends with `event: error` and an OpenAI error object (never after half a line), or a
  plain body whose connection is cut before its announced end (the only honest way once
  a 200 is sent);
- hang: no end within `HANG_BOUND` seconds;
- unexpected: anything else (a 500 "internal error", a stream cut without an error event,
  a truncated body passed off as complete, ...).

After a scenario, `check_leaks` waits for the gateway to settle and reads its /proc:
open upstream sockets must fit the pool (and the scenario's concurrency), client sockets
must be gone, other descriptors back at baseline, RSS within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.fixtures import Gateway

HANG_BOUND = 20.0
CHAT_PATH = "/v1/chat/completions"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
MODES = ("stream", "plain")
# Timeouts for fault scenarios: short enough that every fault resolves in seconds.
FAST_TIMEOUTS = {"connect": 1, "first_byte": 2, "idle": 2, "total": 15}


@dataclass
class Row:
    """One line of the fault table."""

    fault: str
    mode: str = "-"
    expect: str = "ok"
    requests: int = 0
    succeeded: int = 0
    clean_errors: int = 0
    hangs: int = 0
    unexpected: int = 0
    leaks: int = 0
    result: str = "?"
    notes: list[str] = field(default_factory=list)
    leak_detail: dict[str, Any] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> Outcome:
        self.requests += 1
        if outcome.kind == "ok":
            self.succeeded += 1
        elif outcome.kind == "clean":
            self.clean_errors += 1
        elif outcome.kind == "hang":
            self.hangs += 1
        else:
            self.unexpected += 1
            if len(self.notes) < 3:
                self.notes.append(outcome.detail[:200])
        return outcome

    def bound_peak(self, peak: PeakRss, limit_mb: float) -> None:
        """A transient RSS peak over `limit_mb` counts as a leak: memory was not bounded."""
        self.notes.append(f"peak RSS growth {peak.growth_mb} MB (bound {limit_mb:g})")
        if peak.growth_mb >= limit_mb:
            self.leaks += 1
            self.leak_detail["peak_rss_growth_mb"] = peak.growth_mb

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def assert_clean(self, expect: str | None = None) -> None:
        """Zero hangs, zero leaks, nothing unexpected; and every request ended as expected."""
        expect = expect or self.expect
        assert self.hangs == 0, f"{self.fault} [{self.mode}]: {self.hangs} hung requests"
        assert self.leaks == 0, f"{self.fault} [{self.mode}]: leaks {self.leak_detail}"
        assert self.unexpected == 0, f"{self.fault} [{self.mode}]: {self.notes}"
        wanted = {"ok": self.succeeded, "clean": self.clean_errors,
                  "any": self.succeeded + self.clean_errors}[expect]
        assert wanted == self.requests, (
            f"{self.fault} [{self.mode}]: expected all {expect}, got {self.succeeded} ok, "
            f"{self.clean_errors} clean errors of {self.requests}")


@dataclass
class Outcome:
    kind: str  # ok | clean | hang | unexpected
    status: int | None = None
    text: str = ""
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None


def is_openai_error(payload: Any) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    return isinstance(error, dict) and {"message", "type", "param", "code"} <= error.keys()


def sse_verdict(text: str, *, strict_data: bool = True) -> tuple[str, str, dict[str, Any] | None]:
    """ok / clean / unexpected for a whole SSE body as the client received it."""
    if not text.endswith("\n\n"):
        return "unexpected", f"stream cut without an end: ...{text[-120:]!r}", None
    blocks = text[:-2].split("\n\n")
    for block in blocks[:-1]:
        for line in block.split("\n"):
            if not line.startswith(("data:", ":", "event:", "id:", "retry:")):
                return "unexpected", f"malformed SSE line {line[:80]!r}", None
            if strict_data and line.startswith("data: ") and line != "data: [DONE]":
                try:
                    json.loads(line[6:])
                except ValueError:
                    return "unexpected", f"half or broken data line {line[:80]!r}", None
            if line.startswith("event: error"):
                return "unexpected", "an error event in the middle of a stream", None
    last = blocks[-1].lstrip("\n")
    if last == "data: [DONE]":
        return "ok", "", None
    if last.startswith("event: error\ndata: "):
        try:
            payload = json.loads(last.split("data: ", 1)[1])
        except ValueError:
            return "unexpected", f"error event without JSON: {last[:120]!r}", None
        if is_openai_error(payload):
            return "clean", "", payload["error"]
        return "unexpected", f"error event not OpenAI-shaped: {last[:120]!r}", None
    return "unexpected", f"stream ended without [DONE] or an error event: {last[-120:]!r}", None


def body_verdict(status: int, raw: bytes) -> tuple[str, str, dict[str, Any] | None]:
    try:
        payload = json.loads(raw)
    except ValueError:
        return "unexpected", f"HTTP {status} with a body that is not JSON: {raw[:120]!r}", None
    if status == 200:
        if isinstance(payload, dict) and "choices" in payload:
            return "ok", "", None
        return "unexpected", f"HTTP 200 without choices: {raw[:120]!r}", None
    if not is_openai_error(payload):
        return "unexpected", f"HTTP {status} not OpenAI-shaped: {raw[:120]!r}", None
    if status == 500 or not 400 <= status < 600:
        return "unexpected", f"HTTP {status}: {payload['error'].get('message')}", payload["error"]
    return "clean", "", payload["error"]


async def call(
    session: aiohttp.ClientSession,
    gateway: Gateway,
    *,
    stream: bool,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    path: str = CHAT_PATH,
    bound: float = HANG_BOUND,
    strict_data: bool = True,
) -> Outcome:
    """One request through the gateway, classified."""
    payload = dict(body or CHAT)
    if stream:
        payload["stream"] = True
    try:
        async with asyncio.timeout(bound):
            async with session.post(gateway.url + path, json=payload,
                                    headers=gateway.auth | (headers or {})) as resp:
                status, got = resp.status, dict(resp.headers)
                try:
                    raw = await resp.read()
                except aiohttp.ClientPayloadError as exc:
                    if status == 200 and not stream:
                        return Outcome("clean", status, "", f"cut body: {exc}", got)
                    return Outcome("unexpected", status, "", f"cut without an error event: {exc}",
                                   got)
    except TimeoutError:
        return Outcome("hang", detail=f"no end within {bound}s")
    except aiohttp.ClientError as exc:
        return Outcome("unexpected", detail=f"{type(exc).__name__}: {exc}")
    text = raw.decode("utf-8", "replace")
    if status == 200 and resp.content_type == "text/event-stream":
        kind, detail, error = sse_verdict(text, strict_data=strict_data)
    else:
        kind, detail, error = body_verdict(status, raw)
    return Outcome(kind, status, text, detail, got, error)


# -- the gateway process, read from /proc --------------------------------------------------

_TCP_LISTEN = "0A"


@dataclass
class Snapshot:
    fds: int
    other_fds: int  # neither a TCP socket to a client nor to an upstream
    client_sockets: int
    upstream_sockets: int
    rss_kb: int
    upstream_states: dict[str, int] = field(default_factory=dict)


class Probe:
    """Counts a process's descriptors and sockets, and its memory."""

    def __init__(self, pid: int, listen_port: int) -> None:
        self.pid, self.listen_port = pid, listen_port

    def _tcp_table(self) -> dict[str, tuple[int, int, str]]:
        """inode -> (local port, remote port, state) for the process's network namespace."""
        table: dict[str, tuple[int, int, str]] = {}
        for name in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                lines = Path(f"/proc/{self.pid}/net/{name}").read_text().splitlines()[1:]
                for line in lines:
                    parts = line.split()
                    local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
                    table[inode] = (int(local.rsplit(":", 1)[1], 16),
                                    int(remote.rsplit(":", 1)[1], 16), state)
        return table

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def rss_kb(self) -> int:
        return self.status_kb("VmRSS")

    def reset_peak(self) -> None:
        """Reset VmHWM to the current RSS (Linux: clear_refs 5)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def peak_kb(self) -> int:
        return self.status_kb("VmHWM")

    def snapshot(self) -> Snapshot:
        links: list[str] = []
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for entry in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                links.append(os.readlink(fd_dir / entry))
        table = self._tcp_table()
        client = upstream = other = 0
        states: dict[str, int] = {}
        for link in links:
            inode = link[8:-1] if link.startswith("socket:[") else None
            entry = table.get(inode) if inode else None
            if entry is None or entry[2] == _TCP_LISTEN:
                other += 1
            elif entry[0] == self.listen_port:
                client += 1
            else:
                upstream += 1
                states[entry[2]] = states.get(entry[2], 0) + 1
        return Snapshot(fds=len(links), other_fds=other, client_sockets=client,
                        upstream_sockets=upstream, rss_kb=self.rss_kb(), upstream_states=states)


@dataclass
class Baseline:
    probe: Probe
    snapshot: Snapshot
    pool: int
    gateway: Gateway | None = None
    """Where to read the upstreams' slots in use (/status.json), when the test has it."""


async def baseline(gateway: Gateway, pool: int) -> Baseline:
    """Warm the gateway up (one plain and one streamed request), then take its baseline."""
    assert gateway.process is not None
    probe = Probe(gateway.process.pid, gateway.port)
    async with aiohttp.ClientSession() as session:
        for stream in (False, True):
            await call(session, gateway, stream=stream, body={**CHAT, "model": "gamma"})
    await asyncio.sleep(0.2)
    return Baseline(probe, probe.snapshot(), pool, gateway)


async def check_leaks(
    base: Baseline,
    row: Row,
    *,
    concurrency: int,
    rss_slack_mb: float = 40.0,
    fd_slack: int = 3,
    settle: float = 6.0,
) -> Snapshot:
    """Wait up to `settle` seconds for the gateway to let go, then count what it kept.

    Allowed after a scenario: no client sockets (the test closed its side), upstream
    sockets up to the smaller of the pool and the scenario's concurrency (plus one for
    the readiness probe), no upstream slot in use (a slot never given back lowers the
    upstream's cap for good), other descriptors within `fd_slack` of the baseline, RSS
    within `rss_slack_mb` of the baseline."""
    allowed_upstream = min(base.pool, concurrency + 1)
    deadline = time.monotonic() + settle
    while True:
        snap = base.probe.snapshot()
        excess = {
            "client_sockets": snap.client_sockets,
            "upstream_sockets": max(0, snap.upstream_sockets - allowed_upstream),
            "other_fds": max(0, snap.other_fds - base.snapshot.other_fds - fd_slack),
            "rss_mb": max(0.0, round((snap.rss_kb - base.snapshot.rss_kb) / 1024
                                     - rss_slack_mb, 1)),
            "upstream_slots": await slots_in_use(base.gateway),
        }
        if not any(excess.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    leaked = {k: v for k, v in excess.items() if v}
    row.leaks += sum(int(v) if k != "rss_mb" else 1 for k, v in leaked.items())
    row.leak_detail |= {
        **{f"excess_{k}": v for k, v in leaked.items()},
        "fds": f"{base.snapshot.fds}->{snap.fds}",
        "upstream": f"{base.snapshot.upstream_sockets}->{snap.upstream_sockets}"
                    f" (allowed {allowed_upstream})",
        "rss_mb": f"{base.snapshot.rss_kb // 1024}->{snap.rss_kb // 1024}",
    }
    return snap


async def slots_in_use(gateway: Gateway | None) -> int:
    """The upstreams' slots held, summed over upstreams (0 without a gateway to ask)."""
    if gateway is None:
        return 0
    # Closed by both sides at once: the next look at the sockets must not find it.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(
        gateway.url + "/status.json", headers={**gateway.auth, "Connection": "close"}
    ) as resp:
        status = await resp.json()
    return sum(upstream["in_use"] for upstream in status["upstreams"])


class PeakRss:
    """Samples RSS every 20 ms while a scenario runs (VmHWM, reset first, backs it up)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.start_kb = probe.rss_kb()
        self.peak_kb = self.start_kb
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PeakRss:
        with contextlib.suppress(OSError):
            self.probe.reset_peak()
        self.start_kb = self.probe.rss_kb()
        self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, self.probe.rss_kb())
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(OSError):
            self.peak_kb = max(self.peak_kb, self.probe.peak_kb())

    @property
    def growth_mb(self) -> float:
        return round((self.peak_kb - self.start_kb) / 1024, 1)


async def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0,
                       quiet: float = 0.5) -> bytes:
    """Send raw bytes on a fresh connection; read until the gateway closes, or has said
    something and then stayed quiet for `quiet` seconds, or `timeout` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()  # the gateway may answer and close before reading it all
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                wait = min(quiet if chunks else 1.0, deadline - time.monotonic())
                chunk = await asyncio.wait_for(reader.read(65536), timeout=max(wait, 0.01))
            except TimeoutError:
                if chunks:
                    break
                continue
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()


def statuses(response: bytes) -> list[int]:
    """The status codes of every HTTP response in a raw byte stream (bodies included, so
    a response glued to the end of a JSON body is found too)."""
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", response)]



async def run_many(
    row: Row,
    gateway: Gateway,
    n: int,
    *,
    stream: bool,
    concurrency: int = 5,
    judge: Any = None,
    **kwargs: Any,
) -> list[Outcome]:
    """`n` requests, at most `concurrency` at a time, each counted into `row`.
    `judge(outcome)` may re-classify an outcome (e.g. compare the bytes received)."""
    gate = asyncio.Semaphore(concurrency)
    outcomes: list[Outcome] = []

    async def one(session: aiohttp.ClientSession) -> None:
        async with gate:
            outcome = await call(session, gateway, stream=stream, **kwargs)
        if judge is not None and outcome.kind not in ("hang",):
            outcome = judge(outcome)
        outcomes.append(row.count(outcome))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(n)))
    return outcomes


class Blackhole:
    """A TCP server that accepts connections and never answers: an upstream that hangs
    before even reading the request. It counts the connections still open."""

    def __init__(self) -> None:
        self.open = 0
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.accepted += 1
        self._writers.append(writer)
        try:
            while await reader.read(65536):
                pass  # swallow the request, answer nothing
        finally:
            self.open -= 1
            writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
