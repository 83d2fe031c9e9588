"""The unit and sysusers files themselves: systemd-analyze, no machine needed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hxgw.config.gateway import STOP_AFTER_DRAIN, UNIT_STOP_TIMEOUT
from tests.systemd.nspawn_machine import ensure_host_tools

pytestmark = pytest.mark.systemd

REPO = Path(__file__).resolve().parents[2]
UNIT_FILE = REPO / "systemd" / "hx-gateway-ml.service"
SYSUSERS_FILE = REPO / "systemd" / "hx-gateway.sysusers"
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    ensure_host_tools()


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_security_exposure_is_below_two() -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT_FILE)],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert match, f"no exposure level in:\n{out.stdout}\n{out.stderr}"
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure: {exposure}")
    assert exposure < MAX_EXPOSURE, out.stdout


def test_unit_keeps_the_operational_contract() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"]  # systemd 252 has no notify-reload
    assert s["NotifyAccess"] == ["main"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["ExecStartPre"] == ["/opt/hxgw/venv/bin/hxgw check-config --config-dir /etc/hxgw"]
    assert s["ExecStart"] == ["/opt/hxgw/venv/bin/hxgw serve --config-dir /etc/hxgw"]
    assert s["EnvironmentFile"] == ["/etc/hx-gateway-ml.env"]
    assert s["After"] == ["network-online.target hx-litellm-gateway.service"]
    assert s["Wants"] == ["network-online.target"]
    assert s["WantedBy"] == ["multi-user.target"]
    assert s["User"] == s["Group"] == ["hx-gateway"]
    assert s["LimitNOFILE"] == ["65536"]
    assert s["Restart"] == ["on-failure"]
    # The daemon drains for 20 s by default, then writes its last usage rows.
    assert int(s["TimeoutStopSec"][0]) == UNIT_STOP_TIMEOUT >= 20 + STOP_AFTER_DRAIN
    assert s["KillMode"] == ["mixed"]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["SyslogIdentifier"] == ["hx-gateway-ml"]


def test_sysusers_file_declares_a_system_user_without_login() -> None:
    lines = [
        line
        for line in SYSUSERS_FILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(lines) == 1, lines
    # u NAME ID "GECOS" HOME SHELL; the quoted GECOS holds spaces.
    line = lines[0]
    match = re.fullmatch(r'\s*u\s+(\S+)\s+(\S+)\s+"[^"]*"\s+(\S+)\s+(\S+)\s*', line)
    assert match, line
    name, _id, home, shell = match.groups()
    assert (name, home, shell) == ("hx-gateway", "/nonexistent", "/usr/sbin/nologin")


def test_sysusers_file_parses() -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers not installed")
    # --root into an empty directory: parses and plans, touches no real user.
    with tempfile.TemporaryDirectory() as root:
        Path(root, "etc").mkdir()
        out = subprocess.run(
            ["systemd-sysusers", f"--root={root}", str(SYSUSERS_FILE)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        passwd = Path(root, "etc/passwd").read_text()
        assert re.search(r"^hx-gateway:x:\d+:\d+:.*:/nonexistent:/usr/sbin/nologin$", passwd, re.M)
