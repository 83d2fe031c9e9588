"""Shared builders: config directories, the real `hxgw serve` process, free ports."""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml

from hxgw.config.schema import Timeouts

REPO = Path(__file__).resolve().parent.parent
HXGW = str(Path(sys.executable).parent / "hxgw")
"""The installed `hxgw` command, as a user runs it."""


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range (32768 and up on Linux): a
    port the kernel hands out may go, before the gateway binds it, to another test's
    fake upstream (started on port 0), which then gets the gateway's start-up polls."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32767")


def new_key(prefix: str = "sk-test") -> str:
    """A fresh random key per test run: no key is ever written into the repository."""
    return f"{prefix}-{secrets.token_urlsafe(18)}"


DEFAULT_MODELS: list[dict[str, Any]] = [
    {"name": "alpha", "tier_score": 0.9, "specializations": ["coding"],
     "upstream_model": "m-alpha", "mode": "chat"},
    {"name": "beta", "tier_score": 0.7, "specializations": ["chat"],
     "upstream_model": "m-beta", "mode": "chat"},
    {"name": "gamma", "tier_score": 0.5, "specializations": ["chat"],
     "upstream_model": "m-gamma", "mode": "chat"},
    {"name": "embed", "tier_score": 0.8, "specializations": ["embeddings"],
     "upstream_model": "m-embed", "mode": "embedding",
     "transforms": [{"rename": {"input": "prompt"}}]},
]
DEFAULT_ROUTING: dict[str, Any] = {
    "routing": {
        "strategy": "failover",
        "default_group": "chat",
        "groups": {"chat": ["alpha", "beta"], "solo": ["gamma"], "emb": ["embed"]},
    }
}


def write_config(
    directory: Path,
    upstream_url: str,
    *,
    models: list[dict[str, Any]] | None = None,
    routing: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    gateway_doc: dict[str, Any] = {
        "upstreams": {"default": {"url": upstream_url}},
        "timeouts": {"connect": 2, "first_byte": 5, "idle": 5, "total": 30},
        "shutdown": {"drain_timeout": 5},
    }
    for key, value in (gateway or {}).items():
        gateway_doc[key] = value
    # A test's first-byte timeout is a plain answer's too, unless it says otherwise.
    timeouts = gateway_doc["timeouts"]
    timeouts.setdefault("answer", timeouts.get("first_byte", Timeouts().first_byte))
    (directory / "gateway.yaml").write_text(yaml.safe_dump(gateway_doc))
    (directory / "routing.yaml").write_text(yaml.safe_dump(routing or DEFAULT_ROUTING))
    (directory / "model_registry.yaml").write_text(
        yaml.safe_dump({"models": models or DEFAULT_MODELS}))
    for path in directory.iterdir():
        path.chmod(0o640)
    return directory


@dataclass
class Gateway:
    """A real `hxgw serve` process on loopback, with its stderr captured to a file."""

    config_dir: Path
    key: str
    upstream_key: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    log_start: int = 0
    """Where `logs()` begins: a gateway several tests share says what each test met."""
    test_started: float = 0.0
    """When the test that shares it began: `ledger_rows` holds the rows of its requests."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("MASTER_KEY", "HX_UPSTREAM_KEY", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
        env["MASTER_KEY"] = self.key
        # Each gateway's own state (the SQLite store, the ledger's spool), never /var/lib.
        env["HX_STATE_DIR"] = str(self.config_dir.parent / f"state-{self.config_dir.name}")
        # No test gateway meets an upstream a public CA vouches for, and importing aiohttp
        # loads the system's CA bundle twice for its client (a sixth of a start's CPU).
        env["SSL_CERT_FILE"] = os.devnull
        # A crash in native code leaves each thread's Python stack in its log.
        env["PYTHONFAULTHANDLER"] = "1"
        if self.upstream_key:
            env["HX_UPSTREAM_KEY"] = self.upstream_key
        env.update(self.extra_env)
        return env

    def start(self) -> Gateway:
        self.log_path = self.config_dir.parent / f"gateway-{self.port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [HXGW, "serve", "--config-dir", str(self.config_dir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=stop_with_the_tests,
        )
        log.close()
        return self

    async def wait_ready(self, timeout: float = 15.0) -> Gateway:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"hxgw exited with {self.process.returncode}:\n{self.logs()}")
                try:
                    async with session.get(self.url + "/healthz") as resp:
                        # Its own log (when kept) says it listens: the answer is not
                        # another test's server that took the port first.
                        mine = self.log_path is None or "listening" in self.logs()
                        if resp.status == 200 and mine:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"hxgw did not come up:\n{self.logs()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def crashed(self) -> str | None:
        """What it left behind, when it (or, with workers, one of them: the supervisor
        starts it again and says so) ended by a signal no test sends (a crash in native
        code, an abort): None when none did."""
        code = None if self.process is None else self.process.poll()
        if code is not None and -code in CRASHES:
            return f"hxgw died of {signal.Signals(-code).name}:\n{self.logs()}"
        logs = self.logs()
        if WORKER_CRASHED.search(logs):
            return f"an hxgw worker crashed:\n{logs}"
        return None

    def logs(self) -> str:
        if self.log_path is None:
            return ""
        return self.log_path.read_bytes()[self.log_start:].decode(errors="replace")

    def begin_test(self) -> None:
        """Start `logs()` here: what the gateway says from now on."""
        assert self.log_path is not None
        self.log_start = self.log_path.stat().st_size
        self.test_started = time.time()


async def start_serving(
    config_dir: Path, started: list[Gateway], *, upstream_key: str | None = None,
    env: Mapping[str, str] | None = None, wait: bool = True,
) -> Gateway:
    """`hxgw serve` on `config_dir`, ready unless told not to wait; every process it
    starts is added to `started`, for the caller to stop."""
    for attempt in range(3):
        gateway = Gateway(config_dir=config_dir, key=new_key(), upstream_key=upstream_key,
                          extra_env=env or {})
        started.append(gateway.start())
        if not wait:
            return gateway
        try:
            return await gateway.wait_ready()
        except RuntimeError:
            # Its free port was taken between free_port() and its bind, by another
            # test process: another port. (Anything else is the test's failure.)
            if attempt == 2 or "address already in use" not in gateway.logs():
                raise
    raise AssertionError("unreachable")


PR_SET_PDEATHSIG = 1
CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}
WORKER_CRASHED = re.compile(r"signal=SIG(?:SEGV|BUS|ILL|FPE|ABRT)\b")


def stop_all(started: list[Gateway]) -> None:
    """Stop each gateway, then fail if any of them crashed, on the way or before: a
    test that does not look at its gateway's end still learns of a crash."""
    for gateway in started:
        gateway.stop()
    crashes = [said for gateway in started if (said := gateway.crashed())]
    assert not crashes, "\n\n".join(crashes)


def stop_with_the_tests() -> None:
    """Run in a gateway's process before its exec: SIGTERM for it when the test process
    that started it ends. Its own session keeps a Ctrl-C from it (the tests signal it
    themselves), so a run interrupted or killed had left it serving."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def wait_http(url: str, timeout: float = 15.0) -> None:
    """Wait until `url` answers 200: for servers started as subprocesses."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll until `predicate()` is true; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


T = TypeVar("T")


async def poll(
    probe: Callable[[], Awaitable[T]], *, what: str, timeout: float = 15.0,
    interval: float = 0.1,
) -> T:
    """Await `probe()` until it gives a true value, and return that value; after
    `timeout` seconds, fail the test saying `what` was awaited and what `probe()` last
    gave. For what only a request can tell (wait_for polls a plain predicate)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {value!r:.200})")
        await asyncio.sleep(interval)


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def states(self) -> list[str]:
        return [next(k for k in m if k != "STATUS" and k != "MONOTONIC_USEC") if any(
            k not in ("STATUS", "MONOTONIC_USEC") for k in m) else "STATUS" for m in self.drain()]


async def stream_under_way(
    session: aiohttp.ClientSession, gateway: Gateway
) -> aiohttp.ClientResponse:
    """A chat stream to the default group whose first event has reached the client."""
    resp = await session.post(
        gateway.url + "/v1/chat/completions", headers=gateway.auth,
        json={"messages": [{"role": "user", "content": "hi"}], "stream": True})
    await resp.content.readuntil(b"\n\n")
    return resp


def ledger_rows(gateway: Gateway) -> list[dict[str, Any]]:
    """The usage ledger's rows in the gateway's SQLite store; none while it has no table.
    Of a gateway tests share, the rows of requests begun since this test began (a row
    billed apart, a batch's or a background response's, starts at the upstream's
    `created_at`, in whole seconds: it may be left out)."""
    path = Path(gateway.env()["HX_STATE_DIR"]) / "hxgw.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=10) as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(
                "SELECT * FROM usage_ledger WHERE started >= ?", (gateway.test_started,))
            return [dict(r) for r in rows]
    except sqlite3.OperationalError:  # the key store made the file; the ledger's table is next
        return []
