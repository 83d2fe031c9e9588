"""The servers of a benchmark run: fake upstreams, hxgw, the baseline proxy, nginx.

Each `start_*` returns a running, listening `Proc`; `Procs` stops them all.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from procs import Proc, Procs, free_port
from upstream import CHAT_REPLY

HERE = Path(__file__).resolve().parent
GROUP = "bench-chat"
MODEL = "bench-model"

ROUTING_YAML = """\
routing:
  strategy: {strategy}
  default_group: {group}
  failover_order: []
  groups:
    {group}: [{model}]
"""
REGISTRY_YAML = """\
models:
  - name: {model}
    tier_score: 0.8
    specializations: [chat, coding, analysis, writing]
"""
# 1,000 concurrent streams need more than the default pool of 512 upstream
# connections; a short drain keeps stopping quick.
GATEWAY_YAML = """\
limits:
  upstream_connections: 2048
shutdown:
  drain_timeout: 1
"""

NGINX_COMMON = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_max_body_size 64m;
  client_body_buffer_size 2m;
{body}
}}
"""
NGINX_FIXED = """\
  access_log off;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      default_type application/json;
      return 200 '{reply}';
    }}
  }}
"""
NGINX_PROXY = """\
  access_log {dir}/access.log combined buffer=64k flush=1s;
  upstream up {{
    server 127.0.0.1:{upstream_port};
    keepalive 256;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


def _nginx(procs: Procs, name: str, body: str, port: int, role: str) -> Proc:
    binary = nginx_binary()
    assert binary is not None
    run_dir = procs.workdir / name
    run_dir.mkdir()
    conf = run_dir / "nginx.conf"
    conf.write_text(NGINX_COMMON.format(dir=run_dir, body=body))
    argv = [binary, "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "error.log")]
    return procs.start(name, argv, port=port, role=role)


def start_nginx_fixed(procs: Procs) -> Proc:
    """nginx answering every request with the fixed chat reply: a fast upstream."""
    port = free_port()
    reply = CHAT_REPLY.decode()
    assert "'" not in reply
    return _nginx(procs, "upstream-nginx", NGINX_FIXED.format(port=port, reply=reply), port, "load")


def start_nginx_proxy(procs: Procs, upstream_port: int, tag: str) -> Proc:
    port = free_port()
    run_dir = procs.workdir / f"nginx-{tag}"
    body = NGINX_PROXY.format(dir=run_dir, port=port, upstream_port=upstream_port)
    return _nginx(procs, f"nginx-{tag}", body, port, "proxy")


def start_upstream(procs: Procs) -> Proc:
    port = free_port()
    argv = [sys.executable, str(HERE / "upstream.py"), str(port)]
    return procs.start("upstream-aiohttp", argv, port=port, role="load")


def start_baseline(procs: Procs, upstream_url: str, tag: str) -> Proc:
    port = free_port()
    argv = [sys.executable, str(HERE / "baseline_proxy.py"), upstream_url, str(port)]
    return procs.start(f"baseline-{tag}", argv, port=port, role="proxy")


def write_hxgw_config(directory: Path, strategy: str) -> Path:
    directory.mkdir(mode=0o700)
    files = {
        "routing.yaml": ROUTING_YAML.format(strategy=strategy, group=GROUP, model=MODEL),
        "model_registry.yaml": REGISTRY_YAML.format(model=MODEL),
        "gateway.yaml": GATEWAY_YAML,
    }
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o600)
    return directory


def hxgw_env(master_key: str, upstream_url: str) -> dict[str, str]:
    """The environment minus anything that would change hxgw's behaviour under test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HX_")
        and k not in {"JOURNAL_STREAM", "NOTIFY_SOCKET", "LOG_LEVEL"}
        and k not in {"MASTER_KEY", "WATCHDOG_USEC", "WATCHDOG_PID"}
    }
    # Its own state directory (the SQLite store, the ledger's spool), removed at exit.
    state = Path(tempfile.mkdtemp(prefix="hxgw-bench-state-"))
    atexit.register(shutil.rmtree, state, True)
    env.update(MASTER_KEY=master_key, HX_LITELLM_UPSTREAM=upstream_url, HX_STATE_DIR=str(state))
    return env


def start_hxgw(
    procs: Procs,
    config_dir: Path,
    master_key: str,
    upstream_url: str,
    tag: str,
    workers: int | None = None,
) -> Proc:
    """hxgw pinned to the proxy CPU; with `workers`, that many workers left unpinned."""
    port = free_port()
    argv = [sys.executable, "-m", "hxgw", "serve", "--config-dir", str(config_dir)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    env = hxgw_env(master_key, upstream_url)
    role = "proxy" if workers is None else "free"
    return procs.start(f"hxgw-{tag}", argv, port=port, role=role, env=env)
