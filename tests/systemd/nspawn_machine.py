"""A throw-away Debian machine booted with systemd-nspawn, for tests/systemd.

The machine that runs the tests need not run systemd itself: a debootstrapped
Debian 12 root is booted with `systemd-nspawn -b` and driven from outside with
`nsenter -t <its PID 1> -a ...`. The pristine root is cached as a tar file;
every boot unpacks a fresh copy, so runs never see each other's changes, and
systemd never boots on the host's own root.

Knobs (environment):
  HXGW_CACHE_DIR      cache for the root tar and wheels (/var/cache/hxgw)
  HXGW_DEBIAN_MIRROR  mirror for debootstrap (default: debootstrap's own)
  HXGW_KEEP_MACHINE=1 leave the machine's root on disk after the run
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "procps")
# Bump when the root's recipe changes, so a cached tar made by an older
# recipe is rebuilt.
RECIPE = f"1 {SUITE} minbase {','.join(PACKAGES)}"

# What a command in the machine sees: nothing of the host's environment
# (the host's PIP_* settings, say, name paths that are not in there).
MACHINE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class MachineError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("HXGW_CACHE_DIR") or "/var/cache/hxgw")


def log(msg: str) -> None:
    print(f"[nspawn] {msg}", flush=True)


# --- the host -------------------------------------------------------------------


def ensure_host_tools() -> None:
    """Install debootstrap, systemd-nspawn (and systemd-analyze) when missing."""
    wanted = {
        "debootstrap": "debootstrap",
        "systemd-nspawn": "systemd-container",
        "systemd-analyze": "systemd",
        "nsenter": "util-linux",
    }
    missing = sorted({pkg for cmd, pkg in wanted.items() if shutil.which(cmd) is None})
    if not missing:
        return
    log(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def host_runs_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


# --- the root file system -------------------------------------------------------


def ensure_root_tar() -> Path:
    """The cached pristine root as a tar file, made with debootstrap if absent."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / f"nspawn-{SUITE}.tar"
    stamp = tar.with_name(tar.name + ".recipe")
    if tar.is_file() and stamp.is_file() and stamp.read_text() == RECIPE:
        return tar
    log(f"building {tar} with debootstrap (about a minute)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache, prefix="debootstrap-") as tmp:
        root = Path(tmp) / "root"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
        ]
        if os.environ.get("HXGW_DEBIAN_MIRROR"):
            cmd.append(os.environ["HXGW_DEBIAN_MIRROR"])
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if out.returncode != 0:
            raise MachineError(f"debootstrap failed:\n{out.stdout[-4000:]}")
        _finish_root(root)
        partial = tar.with_name(tar.name + ".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.replace(tar)
    stamp.write_text(RECIPE)
    log(f"built {tar} in {time.monotonic() - started:.0f}s")
    return tar


def _finish_root(root: Path) -> None:
    """What a minbase root lacks for these tests."""
    # minbase has no /etc/hosts, so "localhost" would not resolve.
    (root / "etc/hosts").write_text(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    # Nothing in the machine needs a login prompt on the console.
    for unit in ("console-getty.service", "getty.target"):
        link = root / "etc/systemd/system" / unit
        if not link.exists():
            link.symlink_to("/dev/null")


def unpack_root(tar: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "-xf", str(tar)], check=True)


# --- cgroups ----------------------------------------------------------------------


def _cgroup_mounts() -> list[Path]:
    """Writable cgroup hierarchies systemd uses: cgroup2 and name=systemd."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _dev, mnt, fstype, opts, *_ = line.split()
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts.split(",")):
            found.append(Path(mnt))
    return found


class CgroupBox:
    """A cgroup per run in each hierarchy, so what nspawn makes below the
    cgroup it starts in (payload/, supervisor/) is ours alone to remove."""

    def __init__(self, name: str) -> None:
        self.dirs = [mnt / name for mnt in _cgroup_mounts()]

    def create(self) -> None:
        for d in self.dirs:
            d.mkdir(exist_ok=True)

    def enter_self(self) -> None:
        """Move the calling process in (run in the child before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text("0\n")

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            for procs in d.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
        return found

    def remove(self) -> None:
        for d in self.dirs:
            if not d.exists():
                continue
            # Deepest first: a cgroup directory goes only when empty of children.
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()

    def leftovers(self) -> list[Path]:
        return [d for d in self.dirs if d.exists()]

    @staticmethod
    def sweep_stale() -> None:
        """Remove empty cgroups that an interrupted earlier run left behind."""
        for mnt in _cgroup_mounts():
            for d in mnt.glob("hxgw-*"):
                box = CgroupBox(d.name)
                if not box.pids():
                    box.remove()


# --- the machine ------------------------------------------------------------------


class Machine:
    """One booted container. Use as a context manager."""

    def __init__(
        self,
        root: Path,
        *,
        binds: Sequence[tuple[Path, str]] = (),
        binds_ro: Sequence[tuple[Path, str]] = (),
    ) -> None:
        self.root = root
        self.name = f"hxgw-{uuid.uuid4().hex[:8]}"
        self.binds = list(binds)
        self.binds_ro = list(binds_ro)
        self.cgroups = CgroupBox(self.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.console = root.parent / "console.log"

    # lifecycle

    def boot(self, timeout: float = 90) -> None:
        if self.root.resolve() == Path("/"):
            raise MachineError("refusing to boot systemd on the host's own root")
        cmd = [
            "systemd-nspawn",
            f"--directory={self.root}",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--boot",
            "--console=pipe",
            # Only a loopback: the machine's ports (4000, 4010) clash with
            # nothing on the host, and nothing in there reaches the network.
            "--private-network",
        ]
        cmd += [f"--bind={src}:{dst}" for src, dst in self.binds]
        cmd += [f"--bind-ro={src}:{dst}" for src, dst in self.binds_ro]
        preexec = None
        if host_runs_systemd():
            # A host systemd owns the cgroup tree: ask it for a delegated scope.
            cmd = ["systemd-run", "--scope", "--quiet", "-p", "Delegate=yes", *cmd]
        else:
            CgroupBox.sweep_stale()
            self.cgroups.create()
            preexec = self.cgroups.enter_self
        log(f"booting {self.name} from {self.root}")
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,  # only writes cgroup.procs
            )
        deadline = time.monotonic() + timeout
        while not self.leader:
            self._check_alive()
            self.leader = self._find_leader()
            if time.monotonic() > deadline:
                raise MachineError(f"no systemd in {self.name} after {timeout}s")
            time.sleep(0.1)
        # is-system-running --wait needs the machine's D-Bus and PID 1 up.
        while True:
            self._check_alive()
            state = self.run(
                ["systemctl", "is-system-running", "--wait"], check=False, timeout=timeout
            ).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise MachineError(f"{self.name} is {state!r} after {timeout}s")
            time.sleep(0.2)
        if state == "degraded":
            failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
            log(f"{self.name} booted degraded: {failed.strip()}")

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise MachineError(
                f"systemd-nspawn exited with {self.proc.returncode}:\n{self.console_tail()}"
            )

    def _find_leader(self) -> int:
        """The machine's PID 1: nspawn's child that runs systemd."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError):
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
        return 0

    def console_tail(self, n: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.console.read_text(errors="replace")[-n:]
        return ""

    def poweroff(self, timeout: float = 60) -> None:
        """Shut the machine down cleanly; kill what is left after timeout."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.leader:
            self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=30)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not power off in {timeout}s: killing it")
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        # Anything still in our cgroups was started by this machine.
        for pid in self.cgroups.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        self.cgroups.remove()
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)
        if self.cgroups.leftovers():
            raise MachineError(f"cgroups left behind: {self.cgroups.leftovers()}")

    def __enter__(self) -> Machine:
        try:
            self.boot()
        except BaseException:
            self.poweroff()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.poweroff()

    # commands

    def command(self, args: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        """The host command line that runs args inside the machine."""
        menv = dict(MACHINE_ENV, **(env or {}))
        return [
            "nsenter",
            f"--target={self.leader}",
            "--all",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in menv.items()),
            *args,
        ]

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            self.command(args, env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and out.returncode != 0:
            raise MachineError(
                f"in {self.name}: {shlex.join(args)} exited {out.returncode}\n"
                f"stdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-3000:]}"
            )
        return out

    def sh(self, script: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run(["bash", "-euo", "pipefail", "-c", script], **kw)  # type: ignore[arg-type]

    def popen(self, args: Sequence[str], **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            self.command(args), text=True, **kw
        )

    def write(self, path: str, text: str, mode: int | None = None) -> None:
        """Write a file inside the machine. Through the machine, not its root
        directory: /run and /tmp in there are mounts the host does not see.
        An existing file keeps its owner and mode unless mode is given."""
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1"'
        if mode is not None:
            script += f' && chmod {mode:o} "$1"'
        self.run(["sh", "-c", script, "write", path], input=text)

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0


@contextlib.contextmanager
def fresh_machine(
    *,
    binds: Sequence[tuple[Path, str]] = (),
    binds_ro: Sequence[tuple[Path, str]] = (),
) -> Iterator[Machine]:
    """Boot a fresh copy of the cached root; remove it afterwards."""
    if os.geteuid() != 0:
        raise MachineError("tests/systemd need root (debootstrap, nspawn, nsenter)")
    ensure_host_tools()
    tar = ensure_root_tar()
    work = Path(tempfile.mkdtemp(prefix="hxgw-nspawn-", dir="/var/tmp"))
    try:
        started = time.monotonic()
        unpack_root(tar, work / "root")
        machine = Machine(work / "root", binds=binds, binds_ro=binds_ro)
        with machine:
            log(f"{machine.name} up in {time.monotonic() - started:.1f}s")
            yield machine
    finally:
        if os.environ.get("HXGW_KEEP_MACHINE") == "1":
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
