"""`hxgw quickstart`: the gateway as a newcomer first runs it (`make run`).

Without HX_LITELLM_UPSTREAM it starts the demo upstream beside the gateway
(on 127.0.0.1:4000, HX_DEMO_PORT moves it), so the whole path works on a
machine with no LiteLLM; without MASTER_KEY it makes a random client key once
and keeps it with the run's state, so a shell that exported it goes on working
across runs. It prints the lines to paste into another shell to try it, which
work as printed, then serves until interrupted and stops the demo with it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hxgw.config import Listen
from hxgw.tools.usage_cli import RUN_STATE

DEMO_PORT = 4000
TRY_LINE = (
    "curl -s http://{host}:{port}/v1/chat/completions"
    ' -H "Authorization: Bearer $MASTER_KEY" \\\n'
    "       -H 'Content-Type: application/json' \\\n"
    """       -d '{{"model":"hx-chat","messages":[{{"role":"user","""
    """"content":"Return exactly the text: HX-OK"}}]}}'"""
)

LOOPBACK_OF = {"0.0.0.0": "127.0.0.1", "::": "::1"}
"""Where this machine reaches a gateway that listens on every address."""


EPILOG = (
    "environment: MASTER_KEY (else a key made once and kept in HX_STATE_DIR), "
    "HX_LITELLM_UPSTREAM (else the demo upstream) with HX_UPSTREAM_KEY (its key: LiteLLM's "
    f"master key), HX_DEMO_PORT (the demo's port, {DEMO_PORT}), HX_STATE_DIR (keys and "
    "usage; .hxgw-state here)"
)

KEY_PREFIX = "sk-demo-"
RUN_KEY = "make-run-key"
"""The file in the state directory that keeps the key, when MASTER_KEY is not given."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "--config-dir",
        help="config directory (default: $HX_CONFIG_DIR or etc/hxgw, the checkout's examples)",
    )
    parser.add_argument("--host", help="listen address (default: $HX_HOST or 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help=f"listen port (default: $HX_PORT or {Listen().port})"
    )


def run(args: argparse.Namespace, env: dict[str, str]) -> int:
    env = dict(env)
    # The usage ledger and key store of this run (`hxgw usage` and `hxgw keys` read it).
    env["HX_STATE_DIR"] = env.get("HX_STATE_DIR") or str(Path.cwd() / RUN_STATE)
    if not Path(env["HX_STATE_DIR"]).is_absolute():
        # The gateway refuses it: said before a key is kept there or the demo is started.
        print(
            "hxgw quickstart: environment: HX_STATE_DIR: must be an absolute path"
            f" (got {env['HX_STATE_DIR']!r})",
            file=sys.stderr,
        )
        return 1
    key_line = "# MASTER_KEY is the one you set for this run"
    if not env.get("MASTER_KEY"):
        env["MASTER_KEY"] = _kept_key(Path(env["HX_STATE_DIR"]))
        key_line = f"export MASTER_KEY={env['MASTER_KEY']}"
    # This Python running hxgw's own commands, no shell: nothing here is interpreted.
    hxgw = [sys.executable, "-m", "hxgw"]
    demo = None
    started: list[subprocess.Popen[bytes]] = []
    # What is started runs in process groups of its own, so that a stop reaches it once,
    # from here: Ctrl-C (the terminal's SIGINT to this group), `kill -INT` or `kill` to
    # this process alone, or systemd's SIGTERM. The gateway then drains and exits; a
    # second one ends its drain at once.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda number, _: _pass_on(started, number))
    # A SIGHUP (kill -HUP) is a reload: the gateway's, once it runs; until then nothing.
    signal.signal(signal.SIGHUP, lambda *_: None)
    if not env.get("HX_LITELLM_UPSTREAM"):
        port = env.get("HX_DEMO_PORT") or str(DEMO_PORT)
        valid = port.isdigit() and 0 < int(port) < 65536
        taken = _taken(int(port)) if valid else "not a port"
        if taken:
            print(
                f"hxgw quickstart: the demo upstream cannot listen on 127.0.0.1:{port}"
                f" ({taken}); set HX_DEMO_PORT to a free port, or HX_LITELLM_UPSTREAM to a"
                " real upstream",
                file=sys.stderr,
            )
            return 1
        demo = subprocess.Popen(  # noqa: S603
            [*hxgw, "demo-upstream", "--host", "127.0.0.1", "--port", port], process_group=0
        )
        started.append(demo)
        if not _listening(demo, int(port)):
            _stop(demo)
            return 1  # it said why
        env["HX_LITELLM_UPSTREAM"] = f"http://127.0.0.1:{port}"
    elif not env.get("HX_UPSTREAM_KEY"):  # a real upstream gets MASTER_KEY: LiteLLM refuses it
        print(
            "hxgw quickstart: note: HX_UPSTREAM_KEY is unset, so the upstream is sent"
            " MASTER_KEY; a LiteLLM proxy takes only its master key: set HX_UPSTREAM_KEY to it",
            file=sys.stderr,
        )
    host = args.host or env.get("HX_HOST") or "127.0.0.1"
    port = str(args.port or env.get("HX_PORT") or Listen().port)
    # Exported with the key: `hxgw keys` checks --groups against this config's groups.
    config_dir = os.path.abspath(args.config_dir or env.get("HX_CONFIG_DIR") or "etc/hxgw")
    if port.isdigit() and (taken := _taken(int(port), host)):
        print(
            f"hxgw quickstart: the gateway cannot listen on {host}:{port} ({taken}); set"
            " HX_PORT to a free port",
            file=sys.stderr,
        )
        _stop(demo)
        return 1
    serve = [*hxgw, "serve", "--config-dir", config_dir, "--host", host, "--port", port]
    gateway = subprocess.Popen(serve, env=env, process_group=0)  # noqa: S603
    started.append(gateway)
    signal.signal(signal.SIGHUP, lambda *_: gateway.send_signal(signal.SIGHUP))
    try:
        # The lines to try come once it listens, not above a failure to start.
        if port.isdigit() and _listening(gateway, int(port), host, timeout=30):
            _print_try_lines(env, key_line, host, port, config_dir)
        return gateway.wait()
    finally:
        _stop(demo)


def _kept_key(state_dir: Path) -> str:
    """The key `make run` serves with: made at the first run and kept (0600) in its state
    directory, as an exported key that stopped working at the next run told only 401."""
    path = state_dir / RUN_KEY
    with contextlib.suppress(OSError):
        kept = path.read_text().strip()
        if kept.startswith(KEY_PREFIX):
            return kept
    key = KEY_PREFIX + secrets.token_urlsafe(18)
    with contextlib.suppress(OSError):  # unkept, it still serves this run
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(key + "\n")
    return key


def _pass_on(processes: list[subprocess.Popen[bytes]], number: int) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(number)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.terminate()
        process.wait()


def _print_try_lines(
    env: dict[str, str], key_line: str, host: str, port: str, config_dir: str
) -> None:
    """Once the gateway listens: where it is, and the lines to try it from another shell."""
    command = os.path.abspath(sys.argv[0]) if sys.argv[0].endswith("hxgw") else "hxgw"
    activate = f", or: . {sys.prefix}/bin/activate" if sys.prefix != sys.base_prefix else ""
    here = _url_host(host)
    url = f"http://{here}:{port}"
    everywhere = f" (on {host}: other machines reach it too)" if host in LOOPBACK_OF else ""
    print(
        f"The hxgw command is {command} (try {command} --help{activate}).\n"
        f"Gateway on {url}{everywhere}, upstream {env['HX_LITELLM_UPSTREAM']}; Ctrl-C"
        f" (or `kill {os.getpid()}`) stops it, `kill -HUP {os.getpid()}` reloads its config."
        " In another shell, try:\n\n"
        f"  {key_line}\n"
        f"  export HX_STATE_DIR={shlex.quote(env['HX_STATE_DIR'])}"
        f" HX_CONFIG_DIR={shlex.quote(config_dir)}\n"
        f"  {TRY_LINE.format(host=here, port=port)}\n\n"
        f"The status page is {url}/status (in a browser: any user name, the"
        " key as password).",
        flush=True,
    )


def _url_host(host: str) -> str:
    """`host` as a URL names it from this machine: a wildcard as its loopback (a browser
    may refuse http://0.0.0.0), an IPv6 address in brackets (http://::1:4010 is no URL)."""
    here = LOOPBACK_OF.get(host, host)
    return f"[{here}]" if ":" in here else here


def _taken(port: int, host: str = "127.0.0.1") -> str:
    """Why the port cannot be listened on, or "" when it can (checked before the demo is
    started, or the wait below could find whatever else listens there)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        return ""  # the gateway says what is wrong with the host
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OverflowError:  # HX_PORT=70000
            return "not a port"
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use: another `make run`, or another server"
            return exc.strerror or str(exc)
    return ""


def _listening(
    process: subprocess.Popen[bytes], port: int, host: str = "127.0.0.1", timeout: float = 15.0
) -> bool:
    """Whether `process` came to listen on `port`: False once it exits (the port was
    taken: it said so) or does not within `timeout`."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
