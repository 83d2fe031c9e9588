"""Fixtures for the real-systemd suite (`make test-systemd`, root only).

One Debian 12 machine is booted with systemd-nspawn for the whole session
(see nspawn_machine.py), hxgw is installed in it with the project's own
systemd/install.sh, from wheels built here on the host (so the
machine needs no network: it runs with --private-network, and its ports
4000/4010 clash with nothing on the host), and hx-gateway-ml.service runs
against `hxgw demo-upstream` (hx-demo-upstream.service, test-only).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.systemd.nspawn_machine import Machine, MachineError, cache_dir, fresh_machine, log

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
UNIT = "hx-gateway-ml.service"
DEMO_UNIT = "hx-demo-upstream.service"
SRC = "/usr/src/hxgw"  # the checkout, bound read-only into the machine
WHEELS = "/var/cache/hxgw-wheels"  # the wheelhouse, bound read-only
PROBE = f"{SRC}/tests/systemd/probe.py"
ENV_FILE = "/etc/hx-gateway-ml.env"
MACHINE_PYTHON = "3.11"  # Debian 12's python3


# --- wheels -----------------------------------------------------------------------


def requirements() -> list[str]:
    """What pip needs to install the checkout offline: its dependencies and
    the build backend."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "setup.cfg")
    reqs = cfg.get("options", "install_requires", fallback="").split("\n")
    pyproject = (REPO / "pyproject.toml").read_text()
    match = re.search(r"requires\s*=\s*\[([^\]]*)\]", pyproject)
    build = re.findall(r'"([^"]+)"', match.group(1)) if match else ["setuptools", "wheel"]
    # What a dependency needs only on the machine's Python, which a newer host's pip
    # skips: redis wants async-timeout below Python 3.11.3 (Debian 12 has 3.11.2).
    machine_only = ["async-timeout>=4.0.3"]
    return sorted({r.strip() for r in [*reqs, *build, *machine_only] if r.strip()})


def wheelhouse() -> Path:
    """Wheels of everything hxgw needs, for the machine's Python, cached by
    the requirement list: a warm run asks no index at all."""
    python = os.environ.get("HXGW_WHEEL_PYTHON") or sys.executable
    version = subprocess.run(
        [python, "-c", "import sys; print('{}.{}'.format(*sys.version_info))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version != MACHINE_PYTHON:
        raise MachineError(
            f"{python} is Python {version}, the machine's is {MACHINE_PYTHON}: set "
            f"HXGW_WHEEL_PYTHON to a python{MACHINE_PYTHON} with pip to build its wheels"
        )
    reqs = requirements()
    key = hashlib.sha256("\n".join([version, *reqs]).encode()).hexdigest()[:12]
    dest = cache_dir() / f"wheels-cp{version.replace('.', '')}-{key}"
    done = dest / ".complete"
    if done.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    log(f"building wheels into {dest}")
    out = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(dest),
            "--find-links",
            str(dest),
            *reqs,
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise MachineError(f"pip wheel failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    done.write_text("\n".join(reqs) + "\n")
    return dest


# --- the session machine ----------------------------------------------------------


@dataclass
class Box:
    """The booted machine with hxgw installed, and what the install printed."""

    machine: Machine
    installs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    good_routing: str = ""  # routing.yaml as installed, while a test breaks it

    # systemctl and friends

    def systemctl(self, *args: str, check: bool = True, timeout: float = 90) -> str:
        return self.machine.run(["systemctl", *args], check=check, timeout=timeout).stdout.strip()

    def show(self, *props: str, unit: str = UNIT) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self) -> int:
        return int(self.show("MainPID")["MainPID"])

    def is_active(self, unit: str = UNIT) -> str:
        return self.systemctl("is-active", unit, check=False)

    def wait_for(self, what: str, predicate, timeout: float = 30, interval: float = 0.2):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    # the journal

    def cursor(self) -> str:
        """The journal's current end, to read only what comes after it."""
        out = self.machine.run(["journalctl", "--lines=0", "--show-cursor", "--quiet"]).stdout
        match = re.search(r"-- cursor: (\S+)", out)
        return match.group(1) if match else ""

    def journal(self, *args: str, after: str = "") -> list[dict[str, str]]:
        """Entries matching args (journalctl matches and options), as dicts;
        with after, only those that came after that cursor.

        journalctl 252's --after-cursor combined with matches can return no
        entries at all, so the cut is made here: --since narrows to the
        cursor's second, then the entries' sequence numbers decide."""
        cmd = [
            "journalctl",
            "--no-pager",
            "--output=json",
            "--output-fields=MESSAGE,PRIORITY,_PID,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT,UNIT",
            *args,
        ]
        seqnum_id, seqnum = "", -1
        if after:
            fields = dict(part.split("=", 1) for part in after.split(";"))
            seqnum_id, seqnum = fields["s"], int(fields["i"], 16)
            cmd.append(f"--since=@{int(fields['t'], 16) // 1_000_000}")
        out = self.machine.run(cmd).stdout
        entries = []
        for line in out.splitlines():
            entry = json.loads(line)
            if after:
                fields = dict(part.split("=", 1) for part in entry["__CURSOR"].split(";"))
                if fields["s"] == seqnum_id and int(fields["i"], 16) <= seqnum:
                    continue
            message = entry.get("MESSAGE")
            if isinstance(message, list):  # journald stores non-UTF-8 messages as bytes
                entry["MESSAGE"] = bytes(message).decode(errors="replace")
            entries.append(entry)
        return entries

    def messages(self, *args: str, after: str = "") -> list[str]:
        return [e.get("MESSAGE", "") for e in self.journal(*args, after=after)]

    def wait_journal(
        self, what: str, match: str, *args: str, after: str = "", timeout: float = 15
    ) -> list[dict[str, str]]:
        """journal(*args) once an entry's MESSAGE contains match. journald reads
        the daemon's stderr stream and PID 1's messages on separate sockets, so
        a line may land a little after PID 1 saw what followed it."""

        def found() -> list[dict[str, str]] | None:
            entries = self.journal(*args, after=after)
            return entries if any(match in e.get("MESSAGE", "") for e in entries) else None

        return self.wait_for(what, found, timeout=timeout)  # type: ignore[no-any-return]

    def pid1_debug(self, after: str) -> list[str]:
        """What the machine's systemd said about the unit (at debug level) since a cursor."""
        entries = self.journal("_PID=1", after=after)
        return [e.get("MESSAGE", "") for e in entries if e.get("UNIT") == UNIT]

    # the gateway

    def probe(self, *args: str, timeout: float = 60) -> dict[str, object]:
        out = self.machine.run(["python3", PROBE, *args], timeout=timeout).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    def probe_popen(self, *args: str) -> subprocess.Popen[str]:
        return self.machine.popen(
            ["python3", PROBE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def master_key(self) -> str:
        text = self.machine.read(ENV_FILE)
        match = re.search(r"(?m)^MASTER_KEY=(.*)$", text)
        assert match, f"no MASTER_KEY line in {ENV_FILE}"
        return match.group(1).strip()

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = self.machine.run(
            ["bash", f"{SRC}/systemd/install.sh", *args],
            env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELS},
            timeout=300,
        )
        self.installs.append(out)
        return out

    def ensure_running(self) -> None:
        """Bring the gateway back to a plain running state for the next test."""
        if self.is_active() != "active":
            self.systemctl("reset-failed", UNIT, check=False)
            self.systemctl("start", UNIT)
        result = self.probe("wait", "http://127.0.0.1:4010/healthz", "30")
        assert result.get("status") == 200, result


@pytest.fixture(scope="session")
def box() -> Iterator[Box]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    wheels = wheelhouse()
    timings["wheels"] = time.monotonic() - started
    with fresh_machine(binds_ro=[(REPO, SRC), (wheels, WHEELS)]) as machine:
        timings["boot"] = time.monotonic() - started - timings["wheels"]
        b = Box(machine, timings=timings)
        # PID 1 at debug level logs every sd_notify message it gets and every
        # state change, which the tests read to see RELOADING=1, STOPPING=1...
        machine.run(["systemd-analyze", "log-level", "debug"])
        t = time.monotonic()
        b.install("--no-start")
        machine.write(f"/etc/systemd/system/{DEMO_UNIT}", (HERE / DEMO_UNIT).read_text())
        b.systemctl("daemon-reload")
        b.systemctl("start", DEMO_UNIT)
        demo = b.probe("wait", "http://127.0.0.1:4000/v1/models", "30")
        assert demo.get("status") == 200, f"demo upstream did not come up: {demo}"
        # The second run is the default one: idempotent, and it enables and
        # starts the unit.
        b.install()
        timings["install"] = time.monotonic() - t
        log("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        yield b


@pytest.fixture
def running(box: Box) -> Box:
    box.ensure_running()
    return box
