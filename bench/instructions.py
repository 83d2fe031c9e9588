#!/usr/bin/env python3
"""Instructions per proxied chat request, counted by valgrind: hxgw against the
obvious aiohttp proxy, in one run.

    python bench/instructions.py [--requests 1000] [--out FILE]

Why: on a shared VM the CPU time of the same build swings by a third from hour
to hour, and paired wall-clock runs cannot tell a 5% change from noise. The
count of instructions a server executes for the same requests is repeatable to
about 0.2%: good for deciding whether a change paid, and for a ratio against the
baseline that does not depend on the machine's mood. It counts user space only
(not the kernel's share of each send and receive) and says nothing of cache
misses, so it complements `make bench`, never replaces it.

Each server runs under callgrind with instrumentation off; after a warm-up the
count is switched on, a fixed number of requests is sent on 4 keep-alive
connections, and the count is switched off again. Needs valgrind (bench/setup.sh).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import servers
from procs import Proc, Procs, free_port

CONNECTIONS = 4
WARMUP = 200


def chat_request(key: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "model": servers.GROUP,
            "messages": [{"role": "user", "content": "Return exactly the text: HX-OK"}],
            "max_tokens": 16,
        }
    ).encode()
    return body, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}


def send(port: int, request: tuple[bytes, dict[str, str]], count: int) -> None:
    """`count` requests, one at a time on each of CONNECTIONS keep-alive connections;
    every answer must be a 200."""
    body, headers = request
    failures: list[str] = []

    def one_connection(requests: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(requests):
                connection.request("POST", "/v1/chat/completions", body, headers)
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200:
                    failures.append(f"{response.status} {answer[:100]!r}")
        except (OSError, http.client.HTTPException) as exc:
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=one_connection, args=(count // CONNECTIONS,))
        for _ in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")


def _instrument(proc: Proc, state: str) -> None:
    control = shutil.which("callgrind_control")
    assert control is not None
    subprocess.run([control, "-i", state, str(proc.pid)], check=True, capture_output=True)  # noqa: S603


def counted(
    procs: Procs,
    name: str,
    argv: list[str],
    env: dict[str, str] | None,
    request: tuple[bytes, dict[str, str]],
    requests: int,
) -> int:
    """Instructions the server `argv` executed for `requests` requests, after a warm-up."""
    port = free_port()
    log = procs.workdir / f"{name}.callgrind.log"
    wrapped = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--log-file={log}",
        f"--callgrind-out-file={procs.workdir / name}.callgrind.out",
        *[arg.replace("{port}", str(port)) for arg in argv],
    ]
    proc: Proc = procs.start(name, wrapped, port=port, role="proxy", env=env, ready_timeout=180)
    send(port, request, WARMUP)
    _instrument(proc, "on")
    send(port, request, requests)
    _instrument(proc, "off")
    procs.stop(proc, timeout=60)
    found = re.search(r"Collected\s*:\s*([\d,]+)", log.read_text())
    if found is None:
        raise RuntimeError(f"no instruction count in {log}")
    return int(found[1].replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench/instructions.py: needs valgrind; run bench/setup.sh")
    requests = args.requests - args.requests % CONNECTIONS
    key = "sk-bench-" + secrets.token_urlsafe(24)
    request = chat_request(key)
    with tempfile.TemporaryDirectory(prefix="hxgw-instructions-") as tmp:
        procs = Procs(Path(tmp), cores=None)
        try:
            if servers.nginx_binary():
                upstream = servers.start_nginx_fixed(procs)
            else:
                upstream = servers.start_upstream(procs)
            upstream_url = f"http://127.0.0.1:{upstream.port}"
            config = servers.write_hxgw_config(Path(tmp) / "hxgw-config", "failover")
            hxgw_argv = [
                sys.executable,
                "-m",
                "hxgw",
                "serve",
                "--config-dir",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ]
            baseline_argv = [
                sys.executable,
                str(servers.HERE / "baseline_proxy.py"),
                upstream_url,
                "{port}",
            ]
            figures = {
                "hxgw": counted(
                    procs, "hxgw", hxgw_argv, servers.hxgw_env(key, upstream_url), request, requests
                )
                / requests,
                "aiohttp proxy": counted(procs, "baseline", baseline_argv, None, request, requests)
                / requests,
            }
        finally:
            procs.stop_all()
    ratio = figures["hxgw"] / figures["aiohttp proxy"]
    print(
        f"instructions per proxied chat request ({requests} requests, "
        f"{CONNECTIONS} connections, Python {sys.version.split()[0]}):"
    )
    for name, value in figures.items():
        print(f"  {name:<14} {value:>10,.0f}")
    print(f"  hxgw / aiohttp proxy: {ratio:.2f}x")
    if args.out:
        args.out.write_text(
            json.dumps(
                {**figures, "ratio": ratio, "requests": requests, "python": sys.version.split()[0]},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
