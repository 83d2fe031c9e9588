"""hx-gateway-ml.service under a real systemd 252 (Debian 12) in systemd-nspawn.

The tests share one booted machine (conftest.box) and run in file order;
each starts from a running gateway (the `running` fixture) and leaves the
unit as it found it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from tests.systemd.conftest import ENV_FILE, REPO, UNIT, Box

pytestmark = pytest.mark.systemd
HXGW = "/opt/hxgw/venv/bin/hxgw"

HEALTHZ = "http://127.0.0.1:4010/healthz"
DROPIN_DIR = f"/run/systemd/system/{UNIT}.d"
ROUTING = "/etc/hxgw/routing.yaml"


# --- install ------------------------------------------------------------------------


def test_install_script_creates_user_unit_config_and_env_file(box: Box) -> None:
    m = box.machine
    passwd = m.run(["getent", "passwd", "hx-gateway"]).stdout.strip().split(":")
    assert passwd[5:] == ["/nonexistent", "/usr/sbin/nologin"]
    assert int(passwd[2]) < 1000, "not a system user"
    for path, mode in [
        (ENV_FILE, 0o640),
        ("/etc/hxgw", 0o750),
        ("/etc/hxgw/gateway.yaml", 0o640),
        ("/etc/hxgw/routing.yaml", 0o640),
        ("/etc/hxgw/model_registry.yaml", 0o640),
    ]:
        got = m.run(["stat", "-c", "%a %U:%G", path]).stdout.split()
        assert got == [f"{mode:o}", "root:hx-gateway"], path
    assert m.read(f"/etc/systemd/system/{UNIT}") == (REPO / "systemd" / UNIT).read_text()
    assert m.exists("/etc/sysusers.d/hx-gateway.conf")
    assert box.systemctl("is-enabled", UNIT) == "enabled"


def test_install_generates_a_master_key_and_never_prints_it(box: Box) -> None:
    key = box.master_key()
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{40,}", key)
    for run in box.installs:
        assert key not in run.stdout + run.stderr
    assert f"created {ENV_FILE}" in box.installs[0].stdout


def test_install_script_is_idempotent_and_never_overwrites(box: Box) -> None:
    m = box.machine
    env_before = m.read(ENV_FILE)
    # An operator's edit must survive a re-install.
    gateway_yaml = "/etc/hxgw/gateway.yaml"
    edited = m.read(gateway_yaml) + "# edited by the operator\n"
    m.write(gateway_yaml, edited)
    out = box.install("--no-start")
    assert m.read(ENV_FILE) == env_before
    assert m.read(gateway_yaml) == edited
    assert f"kept existing {ENV_FILE}" in out.stdout
    assert "kept existing /etc/hxgw/gateway.yaml" in out.stdout
    assert box.master_key() not in out.stdout + out.stderr


def test_install_with_a_prefix_points_the_unit_at_that_venv(box: Box) -> None:
    m = box.machine
    try:
        box.install("--prefix", "/opt/hxgw-alt/venv", "--no-start")
        unit = m.read(f"/etc/systemd/system/{UNIT}")
        assert "ExecStart=/opt/hxgw-alt/venv/bin/hxgw serve --config-dir /etc/hxgw" in unit
        assert "/opt/hxgw/venv" not in unit
        m.run(["/opt/hxgw-alt/venv/bin/hxgw", "--version"])
    finally:
        box.install("--no-start")
        m.run(["rm", "-rf", "/opt/hxgw-alt"])
    assert m.read(f"/etc/systemd/system/{UNIT}") == (REPO / "systemd" / UNIT).read_text()


# --- verify ---------------------------------------------------------------------------


def test_systemd_analyze_verify_is_clean_in_the_machine(box: Box) -> None:
    out = box.machine.run(["systemd-analyze", "verify", f"/etc/systemd/system/{UNIT}"], check=False)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_systemd_analyze_verify_is_clean_from_the_host(box: Box) -> None:
    # The host's systemd-analyze, against the installed machine's root: the
    # binaries the unit names exist there.
    out = subprocess.run(
        ["systemd-analyze", "verify", f"--root={box.machine.root}", f"/etc/systemd/system/{UNIT}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


# --- start and serve --------------------------------------------------------------------


def test_service_is_active_with_status_and_listens(running: Box) -> None:
    assert running.is_active() == "active"
    props = running.show("Type", "SubState", "MainPID", "StatusText", "User")
    assert props["SubState"] == "running"
    assert int(props["MainPID"]) > 0
    assert "4010" in props["StatusText"], props
    health = running.probe("get", HEALTHZ)
    assert health["status"] == 200
    assert json.loads(str(health["body"])) == {"status": "ok"}


def test_daemon_runs_as_hx_gateway_without_capabilities(running: Box) -> None:
    pid = running.main_pid()
    status = running.machine.run(["cat", f"/proc/{pid}/status"]).stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uid = running.machine.run(["id", "-u", "hx-gateway"]).stdout.strip()
    assert fields["Uid"].split()[0] == uid
    assert int(fields["CapEff"].strip(), 16) == 0
    assert int(fields["CapBnd"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    assert running.show("LimitNOFILE")["LimitNOFILE"] == "65536"
    # systemd sets the closest limit it can: in a sandbox whose hard limit is
    # lower than 65536, that is the hard limit of the machine's PID 1.
    ceiling = open_files_limit(running, 1)[1]
    assert open_files_limit(running, pid) == (min(65536, ceiling),) * 2


def open_files_limit(box: Box, pid: int) -> tuple[int, int]:
    limits = box.machine.run(["cat", f"/proc/{pid}/limits"]).stdout
    match = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
    assert match, limits
    return int(match.group(1)), int(match.group(2))


def test_request_through_the_gateway_with_the_env_file_key(running: Box) -> None:
    ok = running.probe("chat", "Return exactly the text: hello from systemd")
    assert ok["status"] == 200, ok
    answer = json.loads(str(ok["body"]))
    assert answer["choices"][0]["message"]["content"] == "hello from systemd"
    denied = running.probe("chat", "hi", "--no-key")
    assert denied["status"] == 401, denied


def test_streaming_request_through_the_gateway(running: Box) -> None:
    result = running.probe("chat", "Count to 5", "--stream")
    assert result["status"] == 200, result
    assert str(result["content_type"]).startswith("text/event-stream")
    assert result["text"] == "1 2 3 4 5"
    assert result["done"] is True


# --- reload ---------------------------------------------------------------------------


def wait_back_to_running(box: Box, cursor: str) -> list[str]:
    """PID 1's debug lines since cursor, once the unit went reload -> running and the
    READY=1 that took it there is among them (the journal may hand the state change over
    first, under load)."""

    def seen() -> list[str] | None:
        lines = box.pid1_debug(cursor)
        back = any("Changed reload -> running" in x for x in lines)
        ready = any("Got notification message" in x and "READY=1" in x for x in lines)
        return lines if back and ready else None

    return box.wait_for("the unit to return from reload to running", seen, timeout=15)


def test_reload_goes_through_reloading_and_back_to_active(running: Box) -> None:
    pid = running.main_pid()
    cursor = running.cursor()
    started = time.monotonic()
    running.systemctl("reload", UNIT, timeout=30)
    took = time.monotonic() - started
    assert took < 5, f"systemctl reload took {took:.1f}s"
    lines = wait_back_to_running(running, cursor)
    notes = [x for x in lines if "Got notification message" in x]
    reloading = [i for i, x in enumerate(notes) if "RELOADING=1" in x]
    assert reloading, "no RELOADING=1 from the daemon:\n" + "\n".join(lines)
    assert "MONOTONIC_USEC=" in notes[reloading[0]]
    assert any("READY=1" in x for x in notes[reloading[0] + 1 :]), "\n".join(notes)
    assert any("Changed running -> reload" in x for x in lines)
    assert running.is_active() == "active"
    assert running.main_pid() == pid, "reload restarted the daemon"
    assert "last reload: ok" in running.show("StatusText")["StatusText"]
    assert running.probe("get", HEALTHZ)["status"] == 200


def test_a_burst_of_reloads_leaves_the_unit_active(running: Box) -> None:
    pid = running.main_pid()
    for _ in range(5):
        running.systemctl("reload", UNIT, timeout=30)
    running.wait_for("active after a burst of reloads", lambda: running.is_active() == "active")
    assert running.main_pid() == pid
    assert running.probe("chat", "Return exactly the text: still here")["status"] == 200


def reload_with_broken_routing(box: Box) -> tuple[str, int]:
    """Write invalid YAML into routing.yaml and reload; give back the journal
    cursor from before and the daemon's PID. Restore with restore_routing."""
    box.good_routing = box.machine.read(ROUTING)
    pid = box.main_pid()
    cursor = box.cursor()
    box.machine.write(ROUTING, "routing: [this is: not valid yaml\n")
    box.systemctl("reload", UNIT, timeout=30)
    wait_back_to_running(box, cursor)
    return cursor, pid


def restore_routing(box: Box) -> None:
    box.machine.write(ROUTING, box.good_routing)
    cursor = box.cursor()
    box.systemctl("reload", UNIT, timeout=30)
    wait_back_to_running(box, cursor)
    assert "last reload: ok" in box.show("StatusText")["StatusText"]


def test_reload_with_a_broken_config_keeps_serving_and_logs_an_error(running: Box) -> None:
    try:
        cursor, pid = reload_with_broken_routing(running)
        assert running.is_active() == "active"
        assert running.main_pid() == pid
        assert "rejected" in running.show("StatusText")["StatusText"]
        still = running.probe("chat", "Return exactly the text: old config")
        assert still["status"] == 200, still
        running.wait_journal(
            "the rejected reload at priority err",
            "routing.yaml",
            f"--unit={UNIT}",
            "--priority=err",
            after=cursor,
        )
        # What ExecStartPre would say about it.
        check = running.machine.run(
            ["/opt/hxgw/venv/bin/hxgw", "check-config", "--config-dir", "/etc/hxgw"],
            check=False,
            env={"MASTER_KEY": "sk-test"},
        )
        assert check.returncode == 1, check
        assert "routing.yaml" in check.stderr
    finally:
        restore_routing(running)


def test_start_with_a_broken_config_fails_in_check_config_and_says_why(running: Box) -> None:
    m = running.machine
    good = m.read(ROUTING)
    running.systemctl("stop", UNIT)
    cursor = running.cursor()
    try:
        m.write(ROUTING, "routing: [this is: not valid yaml\n")
        started = m.run(["systemctl", "start", UNIT], check=False, timeout=60)
        assert started.returncode != 0, "the unit started on a broken config"
        assert running.show("Result")["Result"] == "exit-code"
        # ExecStartPre's own words, at error priority, so `journalctl -p err`
        # tells an operator why the start failed.
        errors = running.wait_journal(
            "check-config's error at priority err",
            "routing.yaml",
            f"--unit={UNIT}",
            "--priority=err",
            after=cursor,
        )
        assert any(e.get("SYSLOG_IDENTIFIER") == "hx-gateway-ml" for e in errors), errors
    finally:
        m.write(ROUTING, good)
        running.systemctl("stop", UNIT)  # also cancels a pending auto-restart
        running.systemctl("reset-failed", UNIT, check=False)
        running.systemctl("start", UNIT)


# --- the journal ------------------------------------------------------------------------


def test_journal_priorities_filter_the_daemon_lines(running: Box) -> None:
    running.probe("chat", "Return exactly the text: for the access log")
    try:
        cursor, _ = reload_with_broken_routing(running)
    finally:
        restore_routing(running)
    errors = running.wait_journal(
        "the rejected reload at priority err",
        "routing.yaml",
        f"--unit={UNIT}",
        "--priority=err",
        after=cursor,
    )
    assert all(int(e["PRIORITY"]) <= 3 for e in errors), errors
    assert all(e.get("SYSLOG_IDENTIFIER") == "hx-gateway-ml" for e in errors), errors
    # The daemon's own lines carry their level and no visible <N> prefix.
    daemon = [
        e
        for e in running.journal(f"--unit={UNIT}")
        if e.get("SYSLOG_IDENTIFIER") == "hx-gateway-ml"
    ]
    assert daemon
    assert not [e for e in daemon if re.match(r"<\d>", e.get("MESSAGE", ""))]
    priorities = {int(e["PRIORITY"]) for e in daemon}
    assert 6 in priorities and 3 in priorities, priorities
    listening = [e for e in daemon if "listening" in e.get("MESSAGE", "")]
    assert listening and all(int(e["PRIORITY"]) == 6 for e in listening)
    # The seed's way to find requests in the log.
    access = [e["MESSAGE"] for e in daemon if re.search(r"(POST|GET) /v1/", e.get("MESSAGE", ""))]
    assert access, "no access line matching (POST|GET) /v1/"


def test_a_world_readable_env_file_is_warned_about_at_start(running: Box) -> None:
    m = running.machine
    cursor = running.cursor()
    try:
        m.run(["chmod", "644", ENV_FILE])
        running.systemctl("restart", UNIT)
        warnings = running.wait_journal(
            "a warning about the env file's mode",
            ENV_FILE,
            f"--unit={UNIT}",
            "--priority=warning",
            after=cursor,
        )
        assert all(int(e["PRIORITY"]) <= 4 for e in warnings)
    finally:
        m.run(["chmod", "640", ENV_FILE])
        running.systemctl("restart", UNIT)


def test_the_key_never_reaches_the_journal(running: Box) -> None:
    key = running.master_key()
    everything = running.machine.run(["journalctl", "--no-pager", "--output=cat"]).stdout
    assert everything
    assert key not in everything


# --- stop -----------------------------------------------------------------------------


def test_stop_drains_a_stream_in_flight(running: Box) -> None:
    m = running.machine
    progress = "/run/hxgw-test-progress"
    m.run(["rm", "-f", progress])
    # 120 chunks, 0.05 s apart in the demo upstream: a 6 s stream.
    client = running.probe_popen("chat", "Count to 120", "--stream", "--progress", progress)
    stop: subprocess.Popen[str] | None = None
    try:
        running.wait_for(
            "the stream to start", lambda: m.exists(progress), timeout=20, interval=0.05
        )
        cursor = running.cursor()
        started = time.monotonic()
        stop = m.popen(["systemctl", "stop", UNIT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        # Draining: the listener is closed, the stream goes on.
        refused = running.probe("get", HEALTHZ)
        assert "error" in refused, f"new connection accepted while draining: {refused}"
        _, stop_err = stop.communicate(timeout=60)
        assert stop.returncode == 0, stop_err
        took = time.monotonic() - started
        out, err = client.communicate(timeout=60)
    finally:
        for proc in (client, stop):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None and proc.stdout and not proc.stdout.closed:
                proc.communicate()
    result = json.loads(out)
    assert result["status"] == 200, (result, err)
    assert result["done"] is True, result
    assert result["errors"] == []
    assert result["text"] == " ".join(str(i) for i in range(1, 121))
    assert 2 < took < 30, f"systemctl stop took {took:.1f}s"
    props = running.show("Result", "ExecMainCode", "ExecMainStatus", "ActiveState")
    assert props["ActiveState"] == "inactive"
    assert props["Result"] == "success", props
    assert props["ExecMainStatus"] == "0", props
    notes = [x for x in running.pid1_debug(cursor) if "Got notification message" in x]
    assert any("STOPPING=1" in x for x in notes), notes


# --- watchdog ----------------------------------------------------------------------------


def test_watchdog_restarts_a_hung_daemon(running: Box) -> None:
    m = running.machine
    m.write(f"{DROPIN_DIR}/50-test-watchdog.conf", "[Service]\nWatchdogSec=2\n")
    try:
        running.systemctl("daemon-reload")
        running.systemctl("restart", UNIT)
        assert running.show("WatchdogUSec")["WatchdogUSec"] == "2s"
        cursor = running.cursor()
        time.sleep(2.5)
        pings = [
            x
            for x in running.pid1_debug(cursor)
            if "Got notification message" in x and "WATCHDOG=1" in x
        ]
        assert len(pings) >= 2, "the daemon does not ping the watchdog every WatchdogSec/2"
        before = running.show("MainPID", "NRestarts")
        m.run(["kill", "-STOP", before["MainPID"]])

        def restarted() -> dict[str, str] | None:
            now = running.show("MainPID", "NRestarts", "ActiveState")
            fresh = now["MainPID"] not in ("0", before["MainPID"])
            return now if fresh and now["ActiveState"] == "active" else None

        after = running.wait_for("the watchdog to restart the daemon", restarted, timeout=40)
        assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
        lines = running.pid1_debug(cursor)
        assert any("Watchdog timeout" in x for x in lines), lines
        assert running.probe("wait", HEALTHZ, "20")["status"] == 200
    finally:
        m.run(["rm", "-rf", DROPIN_DIR])
        running.systemctl("daemon-reload")
        running.systemctl("restart", UNIT)


# --- state ---------------------------------------------------------------------------------


def test_a_key_root_made_before_the_first_start_serves_once_the_service_starts(
    running: Box,
) -> None:
    # Root's `hxgw keys create` before the service ever ran makes /var/lib/hxgw and its
    # hxgw.db root's: StateDirectory= hands them to User= at the start, so the daemon
    # reads the key and writes its ledger there.
    m = running.machine
    running.systemctl("stop", UNIT)
    m.run(["rm", "-rf", "/var/lib/hxgw"])
    made = m.run([HXGW, "keys", "create", "early", "--config-dir", "/etc/hxgw"])
    assert m.run(["stat", "-c", "%U", "/var/lib/hxgw/hxgw.db"]).stdout.strip() == "root"
    m.write("/run/hxgw-test-key", made.stdout.strip())
    running.ensure_running()
    ok = running.probe("chat", "Return exactly the text: early", "--key-file", "/run/hxgw-test-key")
    assert ok["status"] == 200, ok
    owners = m.run(["stat", "-c", "%U", "/var/lib/hxgw", "/var/lib/hxgw/hxgw.db"]).stdout.split()
    assert owners == ["hx-gateway", "hx-gateway"]

    def counted() -> bool:  # the ledger writes its rows a batch at a time
        usage = [HXGW, "usage", "--key", "early", "--format", "json", "--config-dir", "/etc/hxgw"]
        rows = json.loads(m.run(usage).stdout)["rows"]
        return bool(rows) and rows[0]["requests"] == 1

    running.wait_for("the request's ledger row", counted, timeout=20, interval=0.5)
