"""The benchmark's own processes: started pinned and with enough file descriptors,
measured through /proc, and always stopped, whatever way the run ends.

Every server runs in a session of its own (so a terminal's Ctrl-C reaches only
the orchestrator, which then stops them in order) and with PR_SET_PDEATHSIG,
so that even a SIGKILLed orchestrator leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
NOFILE = 65536
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def raise_nofile(wanted: int = NOFILE) -> int:
    """Raise this process's RLIMIT_NOFILE as far as allowed; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (max(wanted, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        except (ValueError, OSError):
            continue
    return soft


def preexec(core: int | None, parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: pin, lift the fd limit, die with us."""

    def setup() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})
        raise_nofile()
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the orchestrator died before prctl took hold
            os._exit(1)

    return setup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int
    core: int | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """utime + stime from /proc/PID/stat (fields 14 and 15)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def rss_kb(self) -> int:
        return self.status_kb("VmRSS")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Procs:
    workdir: Path
    cores: tuple[int, int] | None  # (load, proxy), or None: no pinning
    running: list[Proc] = field(default_factory=list)

    def core(self, role: str) -> int | None:
        """'load' (wrk, upstreams, clients) on one CPU; 'proxy' (the server under test) on
        the other; 'free' wherever the kernel puts it."""
        if self.cores is None or role == "free":
            return None
        return self.cores[1] if role == "proxy" else self.cores[0]

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        role: str,
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> Proc:
        log = self.workdir / f"{name}.log"
        core = self.core(role)
        with open(log, "ab") as out:
            popen = subprocess.Popen(  # noqa: S603 - argv built by this program
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=preexec(core, os.getpid()),
                cwd=self.workdir,
            )
        proc = Proc(name=name, popen=popen, log=log, port=port, core=core)
        self.running.append(proc)
        self._wait_listening(proc, ready_timeout)
        return proc

    def _wait_listening(self, proc: Proc, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(
                    f"{proc.name} exited with {proc.popen.returncode} before listening:\n"
                    + proc.log_tail()
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", proc.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{proc.name} did not listen on {proc.port} in {timeout:g}s")

    def stop(self, proc: Proc, timeout: float = 5.0) -> None:
        """SIGTERM its process group (its own session), then SIGKILL if it lingers."""
        if proc in self.running:
            self.running.remove(proc)
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(5)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                print(f"bench: could not stop {proc.name} (pid {proc.pid}): {exc}")


def cpu_busy(core: int | None) -> float:
    """Seconds one CPU (or all, for None) ran processes since boot (user, nice, system)
    or was taken by the hypervisor (steal), from /proc/stat. Interrupt time is left
    out: much of it is the benchmark's own loopback traffic."""
    name = "cpu" if core is None else f"cpu{core}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            user, nice, system, steal = (int(fields[i]) for i in (1, 2, 3, 8))
            return (user + nice + system + steal) / CLK_TCK
    return 0.0


def tcp_counters(*names: str) -> dict[str, int]:
    """Counters of the TcpExt line of /proc/net/netstat (ListenOverflows, ListenDrops...)."""
    lines = [ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines()]
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head and head[0] == "TcpExt:":
            table = dict(zip(head[1:], values[1:], strict=True))
            return {n: int(table.get(n, 0)) for n in names}
    return dict.fromkeys(names, 0)
