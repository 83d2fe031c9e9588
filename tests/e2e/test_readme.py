"""The README's snippets, and the lines `make run` prints, run as printed.

Every fenced ```sh (or bash/shell) and ```python block of README.md is run against a real
gateway: `hxgw demo-upstream` and `hxgw serve --config-dir etc/hxgw`, started from the
installed console script with a fresh MASTER_KEY. That is what the README's own set-up lines
do, so each block runs as if typed into that shell:

- cwd is the checkout, the venv's bin directory comes first on PATH, MASTER_KEY is exported;
- a sh block runs under `bash -e -o pipefail`, with `curl` run as `curl --fail-with-body`
  (unless the block says -f itself), so that an HTTP error (a 401 from a missing key) fails
  the block as it would fail a user;
- a python block runs with the venv's interpreter.

Ports: the README names 4000 (upstream) and 4010 (gateway). When both are free, the test
uses them and runs the blocks unchanged. When either is taken (another gateway on this
machine), it starts on free ports instead and rewrites `127.0.0.1:4010` / `localhost:4010`
and `127.0.0.1:4000` / `localhost:4000` in each block to those ports; nothing else changes.

A block that cannot run here (it needs root, systemd, or is `make run` itself) carries a
marker on the line just before its fence:

    <!-- not run by tests/e2e/test_readme.py: REASON -->

An unmarked block that cannot run fails, as does one that exits non-zero.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import HXGW, REPO, free_port, new_key

README = REPO / "README.md"
VENV_BIN = Path(HXGW).parent
MARKER = re.compile(r"<!--\s*not run by tests/e2e/test_readme\.py:\s*(?P<reason>\S.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)\s*$")
SHELL = {"sh", "bash", "shell"}
PYTHON = {"python", "py"}
# Commands that must never run from a test: they need root or systemd, or never return.
UNRUNNABLE = re.compile(
    r"\b(sudo|sudoedit|systemctl|journalctl)\b|\bmake\s+(run|test|install-systemd|check)\b"
)
README_PORTS = {"gateway": 4010, "upstream": 4000}
# `curl` as `curl --fail-with-body`, unless the snippet already asks for -f/--fail itself
# (curl refuses both): an HTTP error fails the snippet, and its body is still shown.
CURL_FAILS = """curl() {
    local arg
    for arg in "$@"; do
        case $arg in -f|-[!-]*f*|--fail|--fail-with-body) command curl "$@"; return;; esac
    done
    command curl --fail-with-body "$@"
}
"""
PORTS_LOCK = Path(tempfile.gettempdir()) / "hxgw-test-readme-ports.lock"


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.lang}"


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block, its language and the marker on the line before it, if any."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = opening["indent"]
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(previous)
        blocks.append(Block(i + 1, opening["lang"], "\n".join(body) + "\n",
                            marker["reason"] if marker else None))
        i = end + 1
    return blocks


RUNNABLE = [b for b in fenced_blocks(README.read_text()) if b.lang in SHELL | PYTHON]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def _wait_http(url: str, process: subprocess.Popen[bytes], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HX_") and k not in ("MASTER_KEY", "NOTIFY_SOCKET", "VIRTUAL_ENV")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Setup:
    env: dict[str, str]
    ports: dict[str, int]

    def substitute(self, code: str) -> str:
        """The block with the README's ports replaced by the ones in use (see the module's
        docstring); unchanged when the test got the README's own ports."""
        for name, readme_port in README_PORTS.items():
            for host in ("127.0.0.1", "localhost"):
                code = code.replace(f"{host}:{readme_port}", f"{host}:{self.ports[name]}")
        return code


@pytest.fixture(scope="module")
def readme_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The README's set-up: demo upstream and gateway on etc/hxgw, MASTER_KEY and
    HX_STATE_DIR exported."""
    logs = tmp_path_factory.mktemp("readme")
    with contextlib.ExitStack() as stack:
        lock = stack.enter_context(PORTS_LOCK.open("w"))
        try:
            # One test run at a time on the README's ports, so two cannot race for them.
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            own = all(_port_free(p) for p in README_PORTS.values())
        except BlockingIOError:
            own = False
        ports = dict(README_PORTS) if own else {name: free_port() for name in README_PORTS}
        # As the README's set-up: the key `make run` printed, and the state it keeps.
        env = _clean_env() | {"MASTER_KEY": new_key("sk-readme"),
                              "HX_STATE_DIR": str(logs / "state")}
        serve_env = env | {"HX_LITELLM_UPSTREAM": f"http://127.0.0.1:{ports['upstream']}"}
        demo_log = stack.enter_context((logs / "demo.log").open("wb"))
        gateway_log = stack.enter_context((logs / "gateway.log").open("wb"))
        demo = subprocess.Popen(
            [HXGW, "demo-upstream", "--port", str(ports["upstream"])], env=env,
            stdout=demo_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        stack.callback(_stop, demo)
        gateway = subprocess.Popen(
            [HXGW, "serve", "--config-dir", "etc/hxgw", "--host", "127.0.0.1",
             "--port", str(ports["gateway"])], cwd=REPO, env=serve_env,
            stdout=gateway_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        stack.callback(_stop, gateway)
        # Through the gateway with this run's key: it is our gateway and our upstream answering.
        _wait_http(f"http://127.0.0.1:{ports['upstream']}/v1/models", demo, {})
        _wait_http(f"http://127.0.0.1:{ports['gateway']}/v1/models", gateway,
                   {"Authorization": f"Bearer {env['MASTER_KEY']}"})
        yield Setup(env=env, ports=ports)


def run_block(block: Block, setup: Setup) -> subprocess.CompletedProcess[str]:
    code = setup.substitute(block.code)
    if block.lang in PYTHON:
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", CURL_FAILS + code]
    return subprocess.run(command, cwd=REPO, env=setup.env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    "block",
    [pytest.param(b, id=b.id, marks=pytest.mark.skip(reason=b.skip_reason))
     if b.skip_reason else pytest.param(b, id=b.id) for b in RUNNABLE],
)
def test_a_readme_snippet_runs_as_printed(block: Block, readme_setup: Setup):
    assert not UNRUNNABLE.search(block.code), (
        f"{block.id} cannot run in a test; mark it with "
        "<!-- not run by tests/e2e/test_readme.py: REASON --> on the line before its fence")
    result = run_block(block, readme_setup)
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}")


def test_every_fenced_block_names_its_language():
    """An unlabelled block would be neither run nor marked: it could not be checked."""
    unlabelled = [b.id for b in fenced_blocks(README.read_text()) if not b.lang]
    assert unlabelled == []


def test_every_marker_stands_before_a_snippet():
    text = README.read_text()
    marked = {b.line for b in RUNNABLE if b.skip_reason}
    assert len(marked) == len(MARKER.findall(text)), "a marker not followed by a sh/python block"


def test_the_readme_runs_some_snippets_for_real():
    assert {b.lang for b in RUNNABLE if not b.skip_reason} >= {"sh", "python"}


# `make run`: the lines it prints for another shell.


@dataclass
class DemoRun:
    output: str
    printed: str  # the indented lines after "try:", as a user copies them


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`hxgw quickstart` (what `make run` runs) as a newcomer runs it: no MASTER_KEY set."""
    with _quickstart(tmp_path_factory.mktemp("make-run")) as run:
        yield run


@contextlib.contextmanager
def _quickstart(directory: Path, host: str | None = None) -> Iterator[DemoRun]:
    """`hxgw quickstart` with its state in `directory`, until it has printed its lines.
    The ports are free ones (HX_PORT, HX_DEMO_PORT), so as not to take the README's;
    `host`, HX_HOST (its default: 127.0.0.1)."""
    out = directory / f"stdout-{time.monotonic_ns()}"
    port, demo_port = free_port(), free_port()
    env = _clean_env() | {"HX_PORT": str(port), "HX_DEMO_PORT": str(demo_port),
                          "HX_STATE_DIR": str(directory / "state")}
    if host is not None:
        env["HX_HOST"] = host
    with out.open("wb") as stdout:
        script = subprocess.Popen([HXGW, "quickstart"], cwd=REPO, env=env,
                                  stdout=stdout, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        here = f"[{host}]" if host and ":" in host else host or "127.0.0.1"
        _wait_http(f"http://{here}:{port}/healthz", script, {})
        deadline = time.monotonic() + 10  # printed once quickstart saw it listen
        while "try:" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        output = out.read_text()
        lines = output.splitlines()
        start = next(i for i, line in enumerate(lines) if line.rstrip().lower().endswith("try:"))
        printed = []
        for line in lines[start + 1 :]:
            if printed and not line.startswith(" "):
                break
            if line.strip():
                printed.append(line.strip())
        yield DemoRun(output=output, printed="\n".join(printed) + "\n")
    finally:
        _stop(script)


def test_make_run_serves_with_the_key_it_made_at_its_first_run(tmp_path: Path):
    # A new key each run had left a shell that exported the last one with 401s.
    with _quickstart(tmp_path) as first:
        pass
    with _quickstart(tmp_path) as second:
        pass
    key = re.search(r"export MASTER_KEY=(\S+)", first.printed)
    assert key and f"export MASTER_KEY={key[1]}" in second.printed
    assert (tmp_path / "state" / "make-run-key").stat().st_mode & 0o777 == 0o600


def test_the_lines_make_run_prints_work_when_pasted_into_a_new_shell(make_run: DemoRun):
    env = _clean_env()  # a new shell: no MASTER_KEY
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", CURL_FAILS + make_run.printed],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{make_run.printed}\n{result.stdout}\n{result.stderr}"
    assert "HX-OK" in result.stdout


def test_the_lines_make_run_prints_work_when_it_listens_on_an_ipv6_loopback(tmp_path: Path):
    # HX_HOST=::1 had them curl 127.0.0.1, where nothing listened, and name the gateway
    # and its status page http://::1:PORT, which no browser or curl takes.
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
    with _quickstart(tmp_path, host="::1") as run:
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", CURL_FAILS + run.printed],
                                env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{run.printed}\n{result.stdout}\n{result.stderr}"
    assert "HX-OK" in result.stdout
    assert "http://::1:" not in run.output and "The status page is http://[::1]:" in run.output


def test_after_make_run_s_lines_a_key_for_a_group_that_does_not_exist_is_refused(
    make_run: DemoRun,
):
    env = _clean_env()
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    script = make_run.printed + "hxgw keys create typo-app --groups hx-chta\n"
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "no group named 'hx-chta'" in result.stderr


def test_make_run_names_its_status_page_and_how_to_open_it(make_run: DemoRun):
    url = re.search(r"The status page is (http://\S+/status) ", make_run.output)
    key = re.search(r"export MASTER_KEY=(\S+)", make_run.printed)
    assert url and key, make_run.output
    login = base64.b64encode(f"anyone:{key[1]}".encode()).decode()
    request = urllib.request.Request(url[1], headers={"Authorization": f"Basic {login}"})
    with urllib.request.urlopen(request, timeout=10) as page:
        assert page.headers["Content-Type"].startswith("text/html")


def test_make_run_says_where_the_hxgw_command_is(make_run: DemoRun):
    assert f"{VENV_BIN}/hxgw" in make_run.output


def _start_make_run(
    tmp_path: Path, stdout: int
) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """`hxgw quickstart` on free ports, in a session of its own, its stderr in a file:
    the process, the gateway's port, the demo's port and that file."""
    port, demo_port = free_port(), free_port()
    env = _clean_env() | {"HX_PORT": str(port), "HX_DEMO_PORT": str(demo_port),
                          "HX_STATE_DIR": str(tmp_path / "state")}
    log = tmp_path / "stderr"
    with log.open("wb") as stderr:
        run = subprocess.Popen([HXGW, "quickstart"], cwd=REPO, env=env,
                               stdout=stdout, stderr=stderr, start_new_session=True)
    return run, port, demo_port, log


@pytest.mark.parametrize(("stop", "to"), [
    (signal.SIGTERM, "make run alone"),  # as systemd or kill would
    (signal.SIGINT, "make run alone"),  # kill -INT on the pid it printed
    (signal.SIGINT, "its process group"),  # Ctrl-C in its terminal
])
def test_stopping_make_run_stops_the_demo_upstream_with_the_gateway_in_one_drain(
    tmp_path: Path, stop: signal.Signals, to: str
):
    run, port, demo_port, log = _start_make_run(tmp_path, stdout=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", run, {})
        _wait_http(f"http://127.0.0.1:{demo_port}/health", run, {})
        if to == "its process group":
            os.killpg(run.pid, stop)
        else:
            run.send_signal(stop)
        assert run.wait(30) == 0
    finally:
        _stop(run)
    assert "stopped" in log.read_text()
    assert "second stop signal" not in log.read_text()  # the drain was not cut short
    for stopped in (port, demo_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", stopped), timeout=5).close()


def test_a_sighup_to_make_run_reloads_the_gateway_and_stops_nothing(tmp_path: Path):
    run, port, demo_port, log = _start_make_run(tmp_path, stdout=subprocess.PIPE)
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", run, {})
        assert run.stdout is not None
        said = [run.stdout.readline().decode() for _ in range(3)]  # the demo's, then ours
        assert any(f"`kill -HUP {run.pid}` reloads" in line for line in said), said
        run.send_signal(signal.SIGHUP)  # as a user would, to the process make run started
        deadline = time.monotonic() + 10
        while "config reloaded" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "config reloaded" in log.read_text()
        assert run.poll() is None
        _wait_http(f"http://127.0.0.1:{demo_port}/health", run, {})
    finally:
        _stop(run)
        assert run.stdout is not None
        run.stdout.close()


def _quickstart_with_a_port_taken(
    tmp_path: Path, port: int, demo_port: int, taken: int
) -> subprocess.CompletedProcess[str]:
    """`hxgw quickstart` on `port` with its demo on `demo_port`, while `taken` is listened on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        env = _clean_env() | {"HX_PORT": str(port), "HX_DEMO_PORT": str(demo_port),
                              "HX_STATE_DIR": str(tmp_path / "state")}
        return subprocess.run([HXGW, "quickstart"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)


def test_make_run_with_the_demo_port_taken_says_how_to_move_it_and_starts_nothing(
    tmp_path: Path,
):
    port, demo_port = free_port(), free_port()
    run = _quickstart_with_a_port_taken(tmp_path, port, demo_port, taken=demo_port)
    assert run.returncode == 1
    assert "HX_DEMO_PORT" in run.stderr and "Traceback" not in run.stderr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_make_run_with_the_gateway_port_taken_says_how_to_move_it_and_prints_no_try_lines(
    tmp_path: Path,
):
    port, demo_port = free_port(), free_port()
    run = _quickstart_with_a_port_taken(tmp_path, port, demo_port, taken=port)
    assert run.returncode == 1
    assert "set HX_PORT to a free port" in run.stderr and "try:" not in run.stdout
    with pytest.raises(ConnectionRefusedError):  # the demo it had started is stopped
        socket.create_connection(("127.0.0.1", demo_port), timeout=5).close()


@pytest.mark.parametrize("upstream_key", [None, "sk-litellm-master"])
def test_make_run_on_a_real_upstream_without_its_key_says_to_give_it(
    tmp_path: Path, upstream_key: str | None
):
    # The upstream was sent this run's MASTER_KEY, which a LiteLLM proxy refuses.
    port = free_port()
    with socket.socket() as holder:  # the gateway's port taken: it stops after the note
        holder.bind(("127.0.0.1", port))
        holder.listen()
        env = _clean_env() | {"HX_PORT": str(port), "HX_STATE_DIR": str(tmp_path / "state"),
                              "HX_LITELLM_UPSTREAM": f"http://127.0.0.1:{free_port()}"}
        if upstream_key:
            env["HX_UPSTREAM_KEY"] = upstream_key
        run = subprocess.run([HXGW, "quickstart"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=60)
    assert run.returncode == 1
    said = "HX_UPSTREAM_KEY is unset, so the upstream is sent MASTER_KEY" in run.stderr
    assert said == (upstream_key is None), run.stderr


def test_make_run_with_a_demo_port_out_of_range_says_how_to_move_it(tmp_path: Path):
    env = _clean_env() | {"HX_PORT": str(free_port()), "HX_DEMO_PORT": "70000",
                          "HX_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run([HXGW, "quickstart"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1
    assert "HX_DEMO_PORT" in run.stderr and "Traceback" not in run.stderr


def test_make_run_with_its_demo_port_taken_says_it_is_in_use_and_how_to_move_it(
    tmp_path: Path,
):
    with socket.socket() as taken:  # as a second `make run` finds the first one's
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _clean_env() | {"HX_PORT": str(free_port()), "HX_DEMO_PORT": str(port),
                              "HX_STATE_DIR": str(tmp_path / "state")}
        run = subprocess.run([HXGW, "quickstart"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr == (
        f"hxgw quickstart: the demo upstream cannot listen on 127.0.0.1:{port} (in use: "
        "another `make run`, or another server); set HX_DEMO_PORT to a free port, or "
        "HX_LITELLM_UPSTREAM to a real upstream\n")


def test_make_run_with_a_gateway_port_out_of_range_says_how_to_move_it(tmp_path: Path):
    env = _clean_env() | {"HX_PORT": "70000", "HX_DEMO_PORT": str(free_port()),
                          "HX_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run([HXGW, "quickstart"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr == ("hxgw quickstart: the gateway cannot listen on 127.0.0.1:70000 (not "
                          "a port); set HX_PORT to a free port\n")


def test_the_demo_upstream_on_a_taken_port_says_so_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([HXGW, "demo-upstream", "--port", str(port)], capture_output=True,
                             text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith(f"hxgw demo-upstream: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in run.stderr and "demo upstream on" not in run.stdout


def test_make_run_with_an_upstream_given_starts_no_demo_and_talks_to_it(tmp_path: Path):
    port, upstream_port, demo_port = free_port(), free_port(), free_port()
    upstream = subprocess.Popen([HXGW, "demo-upstream", "--port", str(upstream_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    env = _clean_env() | {"HX_PORT": str(port), "HX_DEMO_PORT": str(demo_port),
                          "HX_LITELLM_UPSTREAM": f"http://127.0.0.1:{upstream_port}",
                          "HX_STATE_DIR": str(tmp_path / "state"), "MASTER_KEY": new_key()}
    out = tmp_path / "stdout"
    with out.open("wb") as stdout:
        run = subprocess.Popen([HXGW, "quickstart"], cwd=REPO, env=env, stdout=stdout,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", run, {})
        deadline = time.monotonic() + 10  # printed once quickstart saw it listen
        while "try:" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", headers={
                "Authorization": f"Bearer {env['MASTER_KEY']}",
                "Content-Type": "application/json"},
            data=b'{"messages": [{"role": "user", "content": "Return exactly the text: HX-OK"}]}')
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert b"HX-OK" in resp.read()
        with pytest.raises(ConnectionRefusedError):  # no demo of its own
            socket.create_connection(("127.0.0.1", demo_port), timeout=5).close()
    finally:
        _stop(run)
        _stop(upstream)
    printed = out.read_text()
    assert f"upstream http://127.0.0.1:{upstream_port}" in printed
    assert "MASTER_KEY is the one you set" in printed
