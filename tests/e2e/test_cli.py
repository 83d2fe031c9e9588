"""The `hxgw` command line: its subcommands, exit codes and environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import pytest

from hxgw import __version__
from tests.fixtures import HXGW, REPO, Gateway, free_port, new_key, wait_http, write_config


def _hxgw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as state:
        if env is not None:
            # Never the machine's /var/lib/hxgw, which the default reaches as root.
            env = {"HX_STATE_DIR": state, **env}
        return subprocess.run([HXGW, *args], capture_output=True, text=True,
                              env=env, timeout=30)


def test_version_prints_the_package_version():
    result = _hxgw("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hxgw {__version__}"


def test_check_config_accepts_the_shipped_example(monkeypatch):
    env = {"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"}
    result = _hxgw("check-config", "--config-dir", "etc/hxgw", env=env)
    assert result.returncode == 0, result.stderr
    assert "ok (3 models" in result.stdout


def test_check_config_names_every_problem_and_exits_1(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", routing={"routing": {
        "default_group": "missing", "groups": {"chat": ["alpha", "llm03"]}, "stratgy": "x"}})
    result = _hxgw("check-config", "--config-dir", str(tmp_path),
                   env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "routing.yaml: routing.stratgy: unknown key" in result.stderr
    assert "routing.yaml: routing.groups.chat[1]: unknown model 'llm03'" in result.stderr
    assert "routing.yaml: routing.default_group: unknown group 'missing'" in result.stderr


@pytest.mark.parametrize(("mistake", "fix"), [
    (("  default_group:", "  default_group"), "a key without its ':'"),
    (("  default_group:", "\t default_group:"), "indent with spaces"),
    (("  default_group: ", "  default_group: a: "), "needs quotes"),
    (("strategy: failover", "strategy: [failover"), "a '[' or '{' above is never closed"),
])
def test_check_config_says_what_the_usual_yaml_mistake_is(
        tmp_path: Path, mistake: tuple[str, str], fix: str):
    # PyYAML names the token it tripped on, often a line below the mistake.
    write_config(tmp_path, "http://127.0.0.1:1")
    routing = tmp_path / "routing.yaml"
    text = routing.read_text()
    assert mistake[0] in text
    routing.write_text(text.replace(mistake[0], mistake[1], 1))
    result = _hxgw("check-config", "--config-dir", str(tmp_path),
                   env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "routing.yaml: line " in result.stderr and fix in result.stderr, result.stderr


def test_check_config_gives_an_upstream_url_without_its_scheme_the_one_to_use(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    result = _hxgw("check-config", "--config-dir", str(tmp_path),
                   env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin",
                        "HX_LITELLM_UPSTREAM": "localhost:4000"})
    assert result.returncode == 1
    assert ("environment: HX_LITELLM_UPSTREAM: must be an http(s) URL, got 'localhost:4000':"
            " use 'http://localhost:4000'") in result.stderr, result.stderr


def test_check_config_names_an_unknown_key_of_auth_once(tmp_path: Path):
    # Two readers take the auth section (the bad-key policy and the keys file).
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"max_bad_kyes": 5}})
    result = _hxgw("check-config", "--config-dir", str(tmp_path),
                   env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stderr.count("gateway.yaml: auth.max_bad_kyes: unknown key") == 1, result.stderr


def test_check_config_works_without_master_key_and_says_serving_needs_one(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    result = _hxgw("check-config", "--config-dir", str(tmp_path), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "serving needs a client key: set MASTER_KEY or auth.keys_file" in result.stdout


def test_check_config_warns_of_a_default_group_without_a_chat_model(tmp_path: Path):
    routing = {"routing": {"default_group": "emb", "groups": {"emb": ["embed"], "chat": ["alpha"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing)
    result = _hxgw("check-config", "--config-dir", str(tmp_path),
                   env={"PATH": "/usr/bin:/bin", "MASTER_KEY": new_key()})
    assert result.returncode == 0, result.stderr
    assert ("warning: the default group 'emb' has no chat model, only embed (embedding): a chat"
            " request that names no model or group fails") in result.stdout


def test_check_config_says_nothing_of_a_default_group_with_a_chat_model(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    result = _hxgw("check-config", "--config-dir", str(tmp_path),
                   env={"PATH": "/usr/bin:/bin", "MASTER_KEY": new_key()})
    assert result.returncode == 0 and "no chat model" not in result.stdout


def test_check_config_without_a_key_names_the_key_store_it_looked_in(tmp_path: Path):
    write_config(tmp_path / "config", "http://127.0.0.1:1")
    state = tmp_path / "state"
    result = _hxgw("check-config", "--config-dir", str(tmp_path / "config"),
                   env={"PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(state)})
    assert f"none in the key store, SQLite {state / 'hxgw.db'}" in result.stdout
    assert not state.exists()  # looked in, not made


def test_check_config_with_the_service_s_env_file_fails_where_serve_would_want_a_key(
    tmp_path: Path,
):
    write_config(tmp_path / "conf", "http://127.0.0.1:1")
    env_file = tmp_path / "hx.env"
    env_file.write_text("LOG_LEVEL=info\n")
    result = _hxgw("check-config", "--config-dir", str(tmp_path / "conf"),
                   "--env-file", str(env_file),
                   env={"PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 1
    assert "serving needs a client key: set MASTER_KEY" in result.stderr
    assert ": invalid config" in result.stderr
    assert ": ok" not in result.stdout  # it printed "ok (3 models, ...)" and then failed


def test_check_config_on_a_key_store_it_cannot_read_warns_rather_than_fails(tmp_path: Path):
    write_config(tmp_path / "conf", "http://127.0.0.1:1")
    state = tmp_path / "state"
    env = {"PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(state)}
    assert _hxgw("keys", "create", "app", "--config-dir", str(tmp_path / "conf"),
                 env=env).returncode == 0
    (state / "hxgw.db").write_bytes(b"not a database, as a store this user cannot read" * 100)
    env_file = tmp_path / "hx.env"
    env_file.write_text("LOG_LEVEL=info\n")
    result = _hxgw("check-config", "--config-dir", str(tmp_path / "conf"),
                   "--env-file", str(env_file), env=env)
    assert result.returncode == 0, result.stderr
    assert "unless the key store, which cannot be read from here, holds one" in result.stdout


def test_check_config_warns_of_a_key_store_it_cannot_read_when_master_key_is_set(
    tmp_path: Path,
):
    # Served, the gateway would not be ready until it could read the store.
    write_config(tmp_path / "conf", "http://127.0.0.1:1")
    state = tmp_path / "state"
    state.mkdir()
    (state / "hxgw.db").write_bytes(b"garbage\n" * 100)
    result = _hxgw("check-config", "--config-dir", str(tmp_path / "conf"),
                   env={"PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(state),
                        "MASTER_KEY": new_key("sk-master")})
    assert result.returncode == 0, result.stderr
    assert "warning: the key store cannot be read from here: " in result.stdout
    assert "not a database" in result.stdout


def _with_key_env(tmp_path: Path) -> Path:
    upstreams = {"default": {"url": "http://127.0.0.1:1", "key_env": "HX_LITELLM_KEY"}}
    return write_config(tmp_path / "conf", "http://127.0.0.1:1",
                        gateway={"upstreams": upstreams})


def test_check_config_by_hand_says_a_missing_variable_may_be_in_the_service_s_env_file(
    tmp_path: Path,
):
    result = _hxgw("check-config", "--config-dir", str(_with_key_env(tmp_path)),
                   env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "names 'HX_LITELLM_KEY', which is not set" in result.stderr
    assert "hxgw check-config --env-file /etc/hx-gateway-ml.env" in result.stderr


def test_check_config_reads_the_variables_of_an_env_file_as_systemd_does(tmp_path: Path):
    env_file = tmp_path / "hx.env"
    env_file.write_text("# the service's secrets\n; another comment\n\n"
                        f"MASTER_KEY=\"{new_key()}\"\nHX_LITELLM_KEY='sk-litellm'\n")
    env_file.chmod(0o640)
    result = _hxgw("check-config", "--config-dir", str(_with_key_env(tmp_path)),
                   "--env-file", str(env_file), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "serving needs a client key" not in result.stdout  # MASTER_KEY came from the file


def test_check_config_names_the_env_file_line_it_cannot_read(tmp_path: Path):
    env_file = tmp_path / "hx.env"
    env_file.write_text("MASTER_KEY=x\nexport HX_LITELLM_KEY\n")
    result = _hxgw("check-config", "--config-dir", str(_with_key_env(tmp_path)),
                   "--env-file", str(env_file), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"--env-file {env_file}: line 2 is not NAME=VALUE" in result.stderr


def test_check_config_says_an_env_file_that_is_not_there_is_missing_in_words(tmp_path: Path):
    missing = tmp_path / "hx.env"
    result = _hxgw("check-config", "--config-dir", str(_with_key_env(tmp_path)),
                   "--env-file", str(missing), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "Errno" not in result.stderr
    assert f"--env-file {missing}: no such file or directory" in result.stderr


def test_check_config_warns_as_serve_does_of_secrets_every_user_can_read(tmp_path: Path):
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1",
                              gateway={"auth": {"keys_file": "keys.yaml"}})
    keys = config_dir / "keys.yaml"
    keys.write_text(f"keys:\n  - name: app\n    key: {new_key()}\n")
    keys.chmod(0o644)
    env_file = tmp_path / "hx.env"
    env_file.write_text(f"MASTER_KEY={new_key()}\n")
    env_file.chmod(0o644)
    result = _hxgw("check-config", "--config-dir", str(config_dir), "--env-file", str(env_file),
                   env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {keys} holds secrets and every user can read it: chmod o-rwx {keys}",
        f"warning: {env_file} holds secrets and every user can read it: chmod o-rwx {env_file}",
    ]


def test_check_config_does_not_call_an_env_file_without_a_key_one_with_secrets(tmp_path: Path):
    # Its mode is the operator's: an upstream's address is no secret.
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1")
    env_file = tmp_path / "hx.env"
    env_file.write_text("HX_LITELLM_UPSTREAM=http://127.0.0.1:4000\n"
                        "DATABASE_URL=postgresql://hxgw@db/hxgw\n")
    env_file.chmod(0o644)
    result = _hxgw("check-config", "--config-dir", str(config_dir), "--env-file", str(env_file),
                   env={"PATH": "/usr/bin:/bin", "MASTER_KEY": new_key()})
    assert result.returncode == 0, result.stderr
    assert "holds secrets" not in result.stdout


def test_check_config_calls_an_env_file_with_a_password_in_a_url_one_with_secrets(
    tmp_path: Path,
):
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1")
    env_file = tmp_path / "hx.env"
    env_file.write_text("REDIS_URL=redis://:hunter2@cache:6379/0\n")
    env_file.chmod(0o644)
    result = _hxgw("check-config", "--config-dir", str(config_dir), "--env-file", str(env_file),
                   env={"PATH": "/usr/bin:/bin", "MASTER_KEY": new_key()})
    assert f"warning: {env_file} holds secrets and every user can read it" in result.stdout


def test_check_config_warns_of_a_keys_file_key_that_takes_a_stored_key_s_name(tmp_path: Path):
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1")
    env = {"PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(tmp_path / "state")}
    made = _hxgw("keys", "create", "app1", "--config-dir", str(config_dir), env=env)
    assert made.returncode == 0, made.stderr
    keys = config_dir / "keys.yaml"  # added later, with the same name
    keys.write_text(f"keys:\n  - name: app1\n    key: {new_key()}\n")
    keys.chmod(0o600)
    write_config(config_dir, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    result = _hxgw("check-config", "--config-dir", str(config_dir), env=env)
    assert result.returncode == 0, result.stderr
    assert ("warning: the keys file's 'app1' takes the name of a key hxgw keys made, which is "
            "then refused (401): rename one") in result.stdout


def test_check_config_names_the_models_a_budget_cannot_count(tmp_path: Path):
    result = _hxgw("check-config", "--config-dir", str(write_config(tmp_path, "http://127.0.0.1:1")),
                   env={"PATH": "/usr/bin:/bin"})
    assert ("note: models without a price cost nothing in budgets: alpha, beta, gamma, embed"
            in result.stdout)


def test_check_config_needs_no_master_key_where_the_store_holds_a_key(tmp_path: Path):
    config_dir = write_config(tmp_path / "conf", "http://127.0.0.1:1")
    env = {"PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(tmp_path / "state")}
    assert _hxgw("keys", "create", "app", "--config-dir", str(config_dir), env=env).returncode == 0
    result = _hxgw("check-config", "--config-dir", str(config_dir), env=env)
    assert result.returncode == 0 and "serving needs a client key" not in result.stdout


@pytest.mark.parametrize(("drain", "warned"), [(30, False), (31, True)])
def test_check_config_warns_of_a_drain_longer_than_the_unit_waits_to_stop(
    tmp_path: Path, drain: int, warned: bool
):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"shutdown": {"drain_timeout": drain}})
    result = _hxgw("check-config", "--config-dir", str(tmp_path),
                   env={"PATH": "/usr/bin:/bin", "MASTER_KEY": "sk-test-for-check"})
    assert result.returncode == 0, result.stderr
    assert ("past the shipped unit's TimeoutStopSec=45" in result.stdout) is warned


def test_quickstart_refuses_a_relative_state_dir_before_it_makes_or_starts_anything(
    tmp_path: Path,
):
    demo_port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HX_STATE_DIR": "relstate", "HX_DEMO_PORT": str(demo_port),
           "HX_PORT": str(free_port())}
    run = subprocess.run([HXGW, "quickstart", "--config-dir", str(REPO / "etc/hxgw")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr == ("hxgw quickstart: environment: HX_STATE_DIR: must be an absolute path"
                          " (got 'relstate')\n")
    assert list(tmp_path.iterdir()) == []


def test_route_works_without_master_key(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    result = subprocess.run([HXGW, "route", "--config-dir", str(tmp_path), "--json"],
                            input='{"messages": [{"role": "user", "content": "hi"}]}',
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["group"] == "chat"


def test_route_lacking_a_key_env_variable_says_how_to_give_the_service_s(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"metrics": {"key_env": "HX_METRICS_KEY"}})
    result = subprocess.run([HXGW, "route", "--config-dir", str(tmp_path)],
                            input='{"messages": [{"role": "user", "content": "hi"}]}',
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                            timeout=30)
    assert result.returncode == 1
    assert "metrics.key_env: names 'HX_METRICS_KEY', which is not set" in result.stderr
    assert "hxgw route --env-file /etc/hx-gateway-ml.env" in result.stderr


def test_route_reads_the_service_s_variables_from_env_file(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"metrics": {"key_env": "HX_METRICS_KEY"}})
    (tmp_path / "hx.env").write_text("HX_METRICS_KEY=metrics-" + "k" * 32 + "\n")
    result = subprocess.run([HXGW, "route", "--config-dir", str(tmp_path), "--json",
                             "--env-file", str(tmp_path / "hx.env")],
                            input='{"messages": [{"role": "user", "content": "hi"}]}',
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["group"] == "chat"


def test_route_with_an_unknown_group_names_the_option_not_the_header(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    result = subprocess.run([HXGW, "route", "--config-dir", str(tmp_path), "--group", "chta"],
                            input='{"messages": [{"role": "user", "content": "hi"}]}',
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                            timeout=30)
    assert result.returncode == 1
    assert result.stderr == ("hxgw route: --group 'chta': no such group (did you mean 'chat'?);"
                             " groups: chat, emb, solo\n")


def test_serve_on_stored_keys_it_cannot_read_says_so_beside_no_client_key(tmp_path: Path):
    write_config(tmp_path / "conf", "http://127.0.0.1:1")
    state = tmp_path / "state"
    env = {"PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(state)}
    made = _hxgw("keys", "create", "app", "--config-dir", str(tmp_path / "conf"), env=env)
    assert made.returncode == 0, made.stderr
    (state / "hxgw.db").write_bytes(b"not a database, as a store gone bad" * 100)
    result = _hxgw("serve", "--config-dir", str(tmp_path / "conf"), "--port", str(free_port()),
                   env=env)
    assert result.returncode == 1
    assert "no client key" in result.stderr
    assert "the key store cannot be read" in result.stderr


def test_serve_without_any_client_key_refuses_to_start(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    result = _hxgw("serve", "--config-dir", str(tmp_path), "--port", str(free_port()),
                   env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert ("no client key: set MASTER_KEY in the environment (under systemd, in "
            "/etc/hx-gateway-ml.env), or auth.keys_file, or make one: hxgw keys create NAME"
            ) in result.stderr


SUBCOMMAND_OPTIONS = {
    "serve": "--workers",
    "check-config": "--config-dir",
    "route": "--endpoint",
    "train-router": "--output",
    "smoke": "--url",
    "usage": "--since",
    "demo-upstream": "--chunk-delay",
}


@pytest.mark.parametrize(("command", "option"), SUBCOMMAND_OPTIONS.items())
def test_every_subcommand_answers_help_with_its_own_options(command: str, option: str):
    result = _hxgw(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: hxgw {command}")
    assert option in result.stdout


@pytest.mark.parametrize("command", ["keys", "usage"])
def test_the_store_commands_help_says_which_store_they_use(command: str):
    result = _hxgw(command, "--help")
    assert "DATABASE_URL" in result.stdout and "HX_STATE_DIR" in result.stdout


def test_serve_s_help_says_gateway_yaml_s_listen_applies_without_options_or_variables():
    result = _hxgw("serve", "--help")
    said = " ".join(result.stdout.split())  # argparse wraps its lines where it likes
    assert "$HX_HOST, else gateway.yaml's listen.host, else 0.0.0.0" in said
    assert "$HX_PORT, else gateway.yaml's listen.port, else 4010" in said


@pytest.mark.parametrize("workers", ["abc", "0", "\uff12", "1_0"])
def test_serve_with_a_bad_workers_count_says_what_it_takes(workers: str):
    # It said "not a number of workers: 'abc'", and nothing of auto.
    result = _hxgw("serve", "--workers", workers, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert f"argument --workers: not 1-256 or auto: {workers}" in result.stderr.replace("'", "")


@pytest.mark.parametrize("port", ["\uff14010", "4_010", "-1"])
def test_serve_with_a_port_in_other_than_plain_digits_is_bad_usage(port: str):
    result = _hxgw("serve", "--port", port, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "argument --port: not a port number" in result.stderr


def test_smoke_accepts_the_url_option_its_help_shows():
    result = _hxgw("smoke", "--url", "http://127.0.0.1:1", "--timeout", "1",
                   env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"})
    assert "unrecognized arguments" not in result.stderr
    assert result.returncode == 1  # every check fails: nothing listens there
    assert "FAIL" in result.stdout


async def test_a_first_start_on_the_checkouts_example_config_logs_no_warning(tmp_path: Path):
    demo_port, port = free_port(), free_port()
    demo = subprocess.Popen([HXGW, "demo-upstream", "--port", str(demo_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(tmp_path),
           "HX_LITELLM_UPSTREAM": f"http://127.0.0.1:{demo_port}"}
    try:
        await wait_http(f"http://127.0.0.1:{demo_port}/v1/models")
        process = subprocess.Popen([HXGW, "serve", "--config-dir", "etc/hxgw", "--host",
                                    "127.0.0.1", "--port", str(port)],
                                   env=env, stderr=subprocess.PIPE, text=True)
        try:
            await wait_http(f"http://127.0.0.1:{port}/readyz")
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=15)
    finally:
        demo.terminate()
        demo.wait(10)
    assert "listening" in stderr
    # The test's own polls of /readyz may come before the first probe has answered: their
    # 503s are access lines at warning, not the gateway warning of anything.
    warnings = [line for line in stderr.splitlines()
                if " warning " in line and " GET /readyz status=503 " not in line]
    assert not warnings, stderr


def test_serve_with_an_invalid_config_exits_1_and_says_why(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "routing.yaml").write_text("routing: [unclosed\n")
    result = _hxgw("serve", "--config-dir", str(tmp_path), "--port", str(free_port()),
                   env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "invalid YAML" in result.stderr and "routing.yaml" in result.stderr
    assert f"config_dir={tmp_path}" in result.stderr  # which routing.yaml, on a busy host


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_port_in_use_exits_1_and_says_what_to_do(tmp_path: Path, workers: str):
    write_config(tmp_path, "http://127.0.0.1:1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _hxgw("serve", "--config-dir", str(tmp_path), "--host", "127.0.0.1",
                       "--port", str(port), "--workers", workers,
                       env={"MASTER_KEY": new_key(), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
    assert "another process has the port: stop it, or choose another" in result.stderr


async def test_the_port_flag_wins_over_hx_port(tmp_path: Path):
    config = write_config(tmp_path / "c", "http://127.0.0.1:1")
    gateway = Gateway(config_dir=config, key=new_key(), extra_env={"HX_PORT": str(free_port())})
    gateway.start()
    try:
        await gateway.wait_ready()
    finally:
        gateway.stop()


async def test_hx_port_and_hx_host_are_used_without_flags(tmp_path: Path):
    # 127.0.0.2, not the default 0.0.0.0's loopback: a gateway that ignored HX_HOST
    # would answer on 127.0.0.1 too.
    config = write_config(tmp_path / "c", "http://127.0.0.1:1")
    port = free_port()
    env = {"MASTER_KEY": new_key(), "HX_PORT": str(port), "HX_HOST": "127.0.0.2",
           "PATH": "/usr/bin:/bin", "HX_STATE_DIR": str(tmp_path / "state")}
    process = subprocess.Popen([HXGW, "serve", "--config-dir", str(config)],
                               env=env, stderr=subprocess.DEVNULL)
    try:
        await wait_http(f"http://127.0.0.2:{port}/healthz")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        process.terminate()
        process.wait(10)


async def test_the_demo_upstream_serves_the_seed_acceptance_through_the_gateway(tmp_path: Path):
    demo_port = free_port()
    demo = subprocess.Popen([HXGW, "demo-upstream", "--port",
                             str(demo_port), "--chunk-delay", "0"], stdout=subprocess.DEVNULL)
    config = tmp_path / "config"
    config.mkdir()
    for name in ("routing.yaml", "model_registry.yaml", "gateway.yaml"):
        (config / name).write_text((Path("etc/hxgw") / name).read_text())
    gateway = Gateway(config_dir=config, key=new_key(),
                      extra_env={"HX_LITELLM_UPSTREAM": f"http://127.0.0.1:{demo_port}"})
    gateway.start()
    try:
        await gateway.wait_ready()
        await wait_http(f"http://127.0.0.1:{demo_port}/health")
        async with aiohttp.ClientSession(headers=gateway.auth) as session:
            async with session.get(gateway.url + "/v1/models") as resp:
                assert len((await resp.json())["data"]) > 0
            async with session.post(gateway.url + "/v1/embeddings",
                                    json={"model": "emb-premium", "input": "HX-OK"}) as resp:
                assert len((await resp.json())["data"][0]["embedding"]) == 1024
            chat = {"model": "hx-chat", "max_tokens": 10, "temperature": 0,
                    "messages": [{"role": "user", "content": "Return exactly the text: HX-OK"}]}
            async with session.post(gateway.url + "/v1/chat/completions", json=chat) as resp:
                assert (await resp.json())["choices"][0]["message"]["content"] == "HX-OK"
            async with session.post(gateway.url + "/v1/chat/completions",
                                    json=chat | {"stream": True}) as resp:
                text = (await resp.read()).decode()
            assert '"content":"HX-OK"' in text and text.rstrip().endswith("data: [DONE]")
    finally:
        gateway.stop()
        demo.terminate()
        demo.wait(10)


def test_hxgw_alone_prints_its_commands_and_exits_2():
    run = subprocess.run([HXGW], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "quickstart" in run.stdout and "serve" in run.stdout


@pytest.mark.parametrize(("args", "usage", "meant"), [
    (["keys", "create", "app", "--rpmm", "5"], "usage: hxgw keys create ", "did you mean --rpm?"),
    (["usage", "--sinse", "1h"], "usage: hxgw usage ", "did you mean --since?"),
    (["serve", "--prot", "4010"], "usage: hxgw serve ", "did you mean --port?"),
])
def test_a_mistyped_option_gets_its_command_s_usage_and_the_option_it_meant(
    args: list[str], usage: str, meant: str
):
    result = _hxgw(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(usage) and meant in result.stderr


def test_an_extra_argument_of_a_command_is_refused_with_that_command_s_usage():
    result = _hxgw("keys", "list", "extra")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: hxgw keys list ")
    assert result.stderr.rstrip().endswith("unrecognized arguments: extra")


def test_check_config_on_the_journal_says_why_at_error_priority(tmp_path: Path):
    # Under the unit (ExecStartPre) its standard error is the journal: without the <3>
    # prefix `journalctl -p err` shows a failed start and nothing of why.
    config = write_config(tmp_path / "c", "http://127.0.0.1:1")
    (config / "gateway.yaml").write_text("listen: {port: nope}\n")
    journal = tmp_path / "journal"
    with journal.open("w") as stream:
        st = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        result = subprocess.run([HXGW, "check-config", "--config-dir", str(config)],
                                stderr=stream, env=env, timeout=30)
    said = journal.read_text().splitlines()
    assert result.returncode == 1 and said
    assert all(line.startswith("<3>") for line in said), said
