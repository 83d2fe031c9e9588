"""`hxgw smoke` against the real gateway in front of `hxgw demo-upstream`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StartGateway
from tests.fixtures import DEFAULT_MODELS, HXGW, REPO, Gateway, free_port, new_key, write_config

CHECKS = ["healthz", "readyz", "models", "chat", "chat stream", "embeddings",
          "group hx-chat (chat)", "group hx-coding (chat)", "group hx-embed (embedding)"]


def _wait_up(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The shipped example config, served by the real gateway, with the demo upstream behind."""
    demo_port = free_port()
    demo = subprocess.Popen([HXGW, "demo-upstream", "--port",
                             str(demo_port), "--chunk-delay", "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    config = tmp_path_factory.mktemp("smoke") / "config"
    config.mkdir()
    for name in ("routing.yaml", "model_registry.yaml", "gateway.yaml"):
        (config / name).write_text((REPO / "etc/hxgw" / name).read_text())
        (config / name).chmod(0o640)
    running = Gateway(config_dir=config, key=new_key(),
                      extra_env={"HX_LITELLM_UPSTREAM": f"http://127.0.0.1:{demo_port}"}).start()
    try:
        _wait_up(f"http://127.0.0.1:{demo_port}/health")
        _wait_up(running.url + "/healthz")
        # Healthy means ready too: the first readiness probe may predate the demo upstream.
        _wait_up(running.url + "/readyz")
        yield running
    finally:
        running.stop()
        demo.terminate()
        demo.wait(10)


def smoke(url: str | None, *args: str, key: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the smoke command; the key goes in the environment, never on the command line."""
    env = {k: v for k, v in os.environ.items() if k != "MASTER_KEY"} | (env or {})
    if key is not None:
        env["MASTER_KEY"] = key
    where = ["--url", url] if url is not None else []
    return subprocess.run([HXGW, "smoke", *where, *args],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def lines_by_check(stdout: str) -> dict[str, str]:
    """Each check's line, by check name: `  ok    models   5 ms  ...`."""
    found = {}
    for line in stdout.splitlines()[1:-1]:
        name = max((n for n in CHECKS if line[8:].startswith(n + " ")), key=len, default=None)
        if name:
            found[name] = line
    return found


def key_file(directory: Path, content: str, mode: int = 0o600) -> Path:
    path = directory / "key"
    path.write_text(content)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def passing(gateway: Gateway) -> subprocess.CompletedProcess[str]:
    return smoke(gateway.url, key=gateway.key)


@pytest.fixture(scope="module")
def passing_json(gateway: Gateway) -> subprocess.CompletedProcess[str]:
    return smoke(gateway.url, "--json", key=gateway.key)


@pytest.fixture(scope="module")
def wrong_key() -> str:
    return new_key("sk-wrong")


@pytest.fixture(scope="module")
def refused(gateway: Gateway, wrong_key: str) -> subprocess.CompletedProcess[str]:
    return smoke(gateway.url, key=wrong_key)


def test_without_url_it_checks_the_gateway_on_hx_port_of_this_machine():
    # Nothing listens there: the shared gateway's routing statistics stay the other
    # tests' (a chat more would move ml-based routing's latency term).
    port = free_port()
    result = smoke(None, "--json", key=new_key(), env={"HX_PORT": str(port)})
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["url"] == f"http://127.0.0.1:{port}"
    assert report["checks"][0]["result"] == "FAIL"


def test_without_url_or_hx_port_it_checks_where_gateway_yaml_listens(
    tmp_path: Path, dead_port: int
):
    write_config(tmp_path, "http://127.0.0.1:9", gateway={"listen": {"port": dead_port}})
    result = smoke(None, "--json", "--config-dir", str(tmp_path), key=new_key(),
                   env={"HX_PORT": ""})
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["url"] == f"http://127.0.0.1:{dead_port}"


def test_every_check_passes_against_a_healthy_gateway(passing: subprocess.CompletedProcess[str]):
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert passing.stdout.splitlines()[-1] == "9/9 checks passed (100.0%)"
    lines = lines_by_check(passing.stdout)
    assert list(lines) == CHECKS
    assert all(line.startswith("  ok    ") for line in lines.values()), passing.stdout


def test_the_deterministic_chat_answers_exactly_hx_ok_plain_and_streamed(
    passing: subprocess.CompletedProcess[str],
):
    lines = lines_by_check(passing.stdout)
    assert lines["chat"].startswith("  ok") and "HX-OK from llm02-phi3" in lines["chat"]
    assert lines["chat stream"].startswith("  ok") and "HX-OK in " in lines["chat stream"]


def test_embeddings_and_every_configured_group_get_a_request(
    passing_json: subprocess.CompletedProcess[str],
):
    results = {check["name"]: check for check in json.loads(passing_json.stdout)["checks"]}
    assert results["embeddings"]["result"] == "ok"
    assert "1024 dimensions" in results["embeddings"]["detail"]
    for group in ("hx-chat", "hx-coding"):
        assert results[f"group {group} (chat)"]["result"] == "ok"
    assert results["group hx-embed (embedding)"]["result"] == "ok"


def test_the_json_report_gives_every_check_and_the_success_rate(
    passing_json: subprocess.CompletedProcess[str],
):
    report = json.loads(passing_json.stdout)
    assert passing_json.returncode == 0
    assert [check["name"] for check in report["checks"]] == CHECKS
    assert (report["ok"], report["passed"], report["total"], report["success_rate"]) == (
        True, 9, 9, 100.0)
    assert all(check["seconds"] >= 0 for check in report["checks"])


def test_a_wrong_key_fails_the_authenticated_checks_by_name_and_exits_1(
    refused: subprocess.CompletedProcess[str],
):
    assert refused.returncode == 1
    lines = lines_by_check(refused.stdout)
    assert lines["healthz"].startswith("  ok")
    assert lines["readyz"].startswith("  ok")
    for name in ("models", "chat", "chat stream"):
        assert lines[name].startswith("  FAIL  "), lines[name]
        assert "HTTP 401: invalid API key" in lines[name]
        assert "request_id=smoke-" in lines[name]
    assert "checks passed" in refused.stdout.splitlines()[-1]
    assert "the gateway refused the key" in refused.stderr


def test_the_key_never_appears_in_the_output(
    gateway: Gateway, wrong_key: str, tmp_path: Path,
    passing: subprocess.CompletedProcess[str], passing_json: subprocess.CompletedProcess[str],
    refused: subprocess.CompletedProcess[str],
):
    refused_json = smoke(gateway.url, "--json", key=wrong_key)
    from_file = smoke(gateway.url, "--key-file", str(key_file(tmp_path, gateway.key, 0o644)))
    for result in (passing, passing_json, refused, refused_json, from_file):
        output = result.stdout + result.stderr
        assert gateway.key not in output and wrong_key not in output


def test_the_key_is_read_from_a_key_file(gateway: Gateway, tmp_path: Path):
    path = key_file(tmp_path, f"  {gateway.key}\n")
    result = smoke(gateway.url, "--key-file", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines_by_check(result.stdout)["models"].startswith("  ok")
    assert result.stderr == ""


def test_the_key_file_wins_over_master_key(gateway: Gateway, tmp_path: Path):
    path = key_file(tmp_path, gateway.key)
    result = smoke(gateway.url, "--key-file", str(path), key=new_key("sk-wrong"))
    assert lines_by_check(result.stdout)["models"].startswith("  ok")


def test_a_world_readable_key_file_is_used_with_a_warning(gateway: Gateway, tmp_path: Path):
    path = key_file(tmp_path, gateway.key, 0o644)
    result = smoke(gateway.url, "--key-file", str(path))
    assert "readable by every user" in result.stderr
    assert lines_by_check(result.stdout)["models"].startswith("  ok")


def test_a_key_file_is_read_as_text_and_never_run(gateway: Gateway, tmp_path: Path):
    marker = tmp_path / "ran"
    path = key_file(tmp_path, f"MASTER_KEY=$(touch {marker})\n", 0o700)
    result = smoke(gateway.url, "--key-file", str(path))
    assert result.returncode == 2
    assert "must hold the key alone" in result.stderr
    assert "touch" not in result.stdout + result.stderr
    assert not marker.exists()


def test_without_a_key_it_exits_2_and_says_how_to_give_one(gateway: Gateway):
    result = smoke(gateway.url)
    assert result.returncode == 2
    assert "set MASTER_KEY or pass --key-file" in result.stderr


@pytest.mark.parametrize("seconds", ["0", "-1", "nan"])
def test_a_timeout_that_would_never_end_or_has_ended_is_bad_usage(seconds: str):
    result = smoke("http://127.0.0.1:9", "--timeout", seconds, key=new_key())
    assert result.returncode == 2
    assert f"argument --timeout: not a number of seconds above 0: '{seconds}'" in result.stderr


def test_a_url_no_request_can_go_to_is_bad_usage_with_its_reason():
    result = smoke("http://127.0.0.1:99999", key=new_key())
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "hxgw smoke: --url 'http://127.0.0.1:99999': Port out of range 0-65535\n"


def test_a_gateway_that_is_not_there_fails_and_exits_1(dead_port: int):
    result = smoke(f"http://127.0.0.1:{dead_port}", "--timeout", "2", key=new_key())
    assert result.returncode == 1
    assert lines_by_check(result.stdout)["healthz"].startswith("  FAIL")


def test_a_short_key_leaves_the_json_report_whole_and_a_refused_connect_reads_plainly(
    dead_port: int,
):
    run = smoke(f"http://127.0.0.1:{dead_port}", "--json", key="ok")
    report = json.loads(run.stdout)
    assert run.returncode == 1 and report["ok"] is False
    assert [c["result"] for c in report["checks"]][:2] == ["FAIL", "FAIL"]
    detail = report["checks"][0]["detail"]
    assert f"cannot connect to 127.0.0.1:{dead_port}" in detail and "ssl:default" not in detail


def test_a_report_piped_into_a_reader_that_stops_ends_without_a_traceback(dead_port: int):
    env = {**os.environ, "MASTER_KEY": new_key()}
    # `true` has long gone when hxgw, a second into its start, writes: the pipe is closed.
    run = subprocess.run(f"{HXGW} smoke --url http://127.0.0.1:{dead_port} --json | true",
                         shell=True, capture_output=True, text=True, env=env, timeout=120)
    assert run.stderr == ""


async def test_moderation_and_rerank_groups_are_asked_in_their_own_api_and_media_ones_skipped(
    start_gateway: StartGateway,
):
    scorers = [{"name": name, "tier_score": 0.5, "specializations": [], "mode": mode,
                "upstream_model": f"m-{name}"}
               for name, mode in (("judge", "moderation"), ("ranker", "rerank"),
                                  ("whisper", "audio_transcription"))]
    groups = {"chat": ["alpha", "beta"], "safety": ["judge"], "rank": ["ranker"],
              "stt": ["whisper"]}
    gateway = await start_gateway(models=[*DEFAULT_MODELS, *scorers], routing={
        "routing": {"default_group": "chat", "groups": groups}})
    result = await asyncio.to_thread(smoke, gateway.url, "--json", key=gateway.key)
    checks = {c["name"]: c["result"] for c in json.loads(result.stdout)["checks"]}
    assert (checks["group safety (moderation)"], checks["group rank (rerank)"],
            checks["group stt (audio_transcription)"]) == ("ok", "ok", "skip")
