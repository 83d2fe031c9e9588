"""Facts about the machine and the run, kept in the results' meta: the CPU, the
versions of Python, the libraries and the tools, the git revisions (the one under
test and a `--compare` one), how busy the CPUs are, and stale work dirs to remove."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import servers
import uvloop
from procs import cpu_busy

import hxgw

REPO = Path(__file__).resolve().parent.parent


def _tool_version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    except OSError:
        return None
    text = (done.stdout + done.stderr).strip().splitlines()
    if not text:
        return None
    first = text[0]
    if first.startswith("nginx version: nginx/"):
        return first.split("/", 1)[1]
    if first.startswith("wrk "):
        return first.split()[1]
    return first


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(  # noqa: S603
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    nginx = servers.nginx_binary()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uvloop.__version__,
        "orjson": orjson.__version__,
        "hxgw": hxgw.__version__,
        "git": git or "unknown",
        "nginx": _tool_version([nginx, "-v"]) if nginx else None,
        "wrk": _tool_version(["wrk", "-v"]),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


def compare_label(revision: str) -> str:
    if revision == ".":
        return "hxgw@worktree"
    return f"hxgw@{Path(revision).name if Path(revision).is_dir() else revision}"


def resolve_revision(revision: str) -> str:
    if revision == "." or Path(revision).is_dir():
        return revision
    return subprocess.run(  # noqa: S603
        ["git", "-C", str(REPO), "rev-parse", "--short=12", revision + "^{commit}"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def remove_stale_workdirs() -> None:
    """Work dirs of earlier runs that were killed outright (SIGKILL skips cleanup)."""
    for stale in Path(tempfile.gettempdir()).glob("hxgw-bench-*"):
        try:
            owner = int((stale / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(stale, ignore_errors=True)


def busy_before(seconds: float = 2.0) -> float:
    """How busy the machine is before we start: percent of one CPU, all CPUs summed."""
    busy, started = cpu_busy(None), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_busy(None) - busy) / (time.monotonic() - started)


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def pin_cpus(no_pin: bool) -> tuple[tuple[int, int] | None, str]:
    """Two CPUs (or None): this process, which runs the Python clients, moves to the
    first; the proxy under test goes to the second. With the sentence for the meta."""
    cpus = sorted(os.sched_getaffinity(0))
    cores = (cpus[0], cpus[1]) if len(cpus) >= 2 and not no_pin else None
    if cores:
        os.sched_setaffinity(0, {cores[0]})  # this process runs the Python clients
        pinning = (
            f"{len(cpus)} CPUs; the proxy under test pinned to CPU {cores[1]}; wrk (1 thread), "
            f"the fake upstreams and the Python stream clients share CPU {cores[0]} (sched_setaffinity)"
        )
    else:
        pinning = f"{len(cpus)} CPU(s), no pinning: load, upstream and proxy share the CPUs"
    return cores, pinning
