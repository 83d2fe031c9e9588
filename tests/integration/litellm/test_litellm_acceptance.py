"""The seed's acceptance against a real LiteLLM proxy, through hxgw.

    client --(client key)--> hxgw --(LiteLLM master key)--> LiteLLM --> mock_response (chat)
                                                                    --> demo-upstream (embeddings)

The module's fixture starts `hxgw demo-upstream` (the embeddings backend
LiteLLM proxies to), a real LiteLLM proxy (chat answered from `mock_response`,
no database, nothing off loopback) and hxgw in front of it, each a subprocess
on a free loopback port, and stops them with their process groups. LiteLLM is
installed into a cache by ensure_litellm.sh when it is not there yet.

Every request to hxgw carries the client key; hxgw presents LiteLLM's master
key upstream. LiteLLM without a database accepts its master key and nothing
else, so the client key sent to it directly is refused. Both keys are made per
run and scrubbed from anything this module prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import pytest
from openai import BadRequestError, InternalServerError, OpenAI

from hxgw.upstream.affinity import unbind
from tests.fixtures import HXGW

pytestmark = pytest.mark.litellm

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LOOPBACK = "127.0.0.1"
START_TIMEOUT = float(os.environ.get("HXGW_TEST_START_TIMEOUT", "120"))
INSTALL_TIMEOUT = 1800.0
STOP_TIMEOUT = 15.0
# urllib without the environment's proxies: every request here is to loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# LiteLLM makes no outside call with LITELLM_LOCAL_MODEL_COST_MAP=True (seen
# with strace: only loopback connects). Should a later version try, its HTTP
# clients meet a proxy on loopback's discard port instead of the network.
NO_WAY_OUT = {
    name: f"http://{LOOPBACK}:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
} | {"NO_PROXY": f"{LOOPBACK},localhost", "no_proxy": f"{LOOPBACK},localhost"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Stack:
    hxgw_url: str
    litellm_url: str
    embed_url: str
    client_key: str = field(repr=False)
    litellm_key: str = field(repr=False)
    logs: tuple[Path, ...]


class Service:
    """One subprocess in its own process group, its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        workdir: Path,
        log_path: Path,
        hidden: Sequence[str],
    ) -> None:
        self.name, self.log_path, self.hidden = name, log_path, hidden
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace")
        return scrub("\n".join(text.splitlines()[-lines:]), self.hidden)

    def wait_ready(self, url: str) -> float:
        """Poll `url` until it answers 200; return the seconds that took."""
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode} before it was "
                    f"ready; its log ends:\n{self.tail()}"
                )
            with contextlib.suppress(OSError), OPENER.open(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
            time.sleep(0.25)
        pytest.fail(
            f"{self.name} not ready at {url} after {START_TIMEOUT:.0f} s; "
            f"its log ends:\n{self.tail()}"
        )

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                signal_group(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(STOP_TIMEOUT)
            # Whatever the leader left behind in its group (workers) goes too.
            signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        finally:
            self._log.close()


class Services:
    """Services started one after the other, each once the one before is ready."""

    def __init__(self, work: Path, hidden: Sequence[str]) -> None:
        self.work, self.hidden = work, hidden
        self.started: list[Service] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], workdir: Path, ready_path: str
    ) -> str:
        """Start `argv --host 127.0.0.1 --port <free port>`; return its base URL once ready."""
        port = free_port()
        argv = [*argv, "--host", LOOPBACK, "--port", str(port)]
        service = Service(name, argv, env, workdir, self.work / f"{name}.log", self.hidden)
        self.started.append(service)
        url = f"http://{LOOPBACK}:{port}"
        took = service.wait_ready(url + ready_path)
        print(f"{name} ready on {url} after {took:.1f} s", file=sys.stderr)
        return url

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def scrub(text: str, hidden: Sequence[str]) -> str:
    for secret in hidden:
        text = text.replace(secret, "<redacted>")
    return text


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def ensure_litellm() -> Path:
    """The litellm executable, installed into the cache by ensure_litellm.sh if need be."""
    done = subprocess.run(
        ["bash", str(HERE / "ensure_litellm.sh")],
        stdout=subprocess.PIPE,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"ensure_litellm.sh failed with exit code {done.returncode}")
    executable = Path(done.stdout.strip().splitlines()[-1])
    if not os.access(executable, os.X_OK):
        pytest.fail(f"ensure_litellm.sh printed {executable}, which is not executable")
    return executable


def base_env(home: Path) -> dict[str, str]:
    """A small, explicit environment: nothing of the caller's leaks in (no
    DATABASE_URL, no provider keys, no proxies)."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    litellm = ensure_litellm()
    work = tmp_path_factory.mktemp("litellm-stack")
    home = work / "home"
    home.mkdir()
    client_key = "sk-hxclient-" + secrets.token_hex(16)
    litellm_key = "sk-litellm-" + secrets.token_hex(16)
    hxgw = [HXGW]
    services = Services(work, hidden=(client_key, litellm_key))
    try:
        embed_url = services.start(
            "demo-upstream", [*hxgw, "demo-upstream"], base_env(home), REPO, "/health"
        )
        litellm_env = (
            base_env(home)
            | NO_WAY_OUT
            | {
                "LITELLM_MASTER_KEY": litellm_key,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "HXGW_TEST_EMBED_BASE": f"{embed_url}/v1",
            }
        )
        litellm_argv = [
            str(litellm),
            "--config",
            str(HERE / "litellm_config.yaml"),
            "--telemetry",
            "False",
        ]
        litellm_url = services.start(
            "litellm", litellm_argv, litellm_env, work, "/health/liveliness"
        )
        hxgw_env = base_env(home) | {
            "HX_STATE_DIR": str(work / "hxgw-state"),  # not the machine's /var/lib/hxgw
            "MASTER_KEY": client_key,
            "HX_UPSTREAM_KEY": litellm_key,
            "HX_LITELLM_UPSTREAM": litellm_url,
            "LOG_LEVEL": "info",
        }
        hxgw_argv = [*hxgw, "serve", "--config-dir", str(HERE / "hxgw_config")]
        hxgw_url = services.start("hxgw", hxgw_argv, hxgw_env, REPO, "/healthz")
        yield Stack(
            hxgw_url=hxgw_url,
            litellm_url=litellm_url,
            embed_url=embed_url,
            client_key=client_key,
            litellm_key=litellm_key,
            logs=tuple(s.log_path for s in services.started),
        )
    finally:
        services.stop_all()


@pytest.fixture
def client(stack: Stack) -> Iterator[OpenAI]:
    url, key = f"{stack.hxgw_url}/v1", stack.client_key
    with OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30) as sdk:
        yield sdk


def call(
    url: str, key: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """GET, or POST `body` as JSON; return the status and the decoded answer, errors too."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        | (headers or {}),
    )
    try:
        with OPENER.open(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


PROMPT = "Return exactly the text: HX-OK"
CHAT = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 10, "temperature": 0}
EMBED = {"model": "emb-premium", "input": "HX-OK"}


def test_models_list_is_litellms(client: OpenAI) -> None:
    ids = [model.id for model in client.models.list().data]
    assert len(ids) > 0
    assert {"llm02-phi3", "llm01-llama3.2-3b", "emb-premium"} <= set(ids)


def test_embeddings_have_1024_dimensions(stack: Stack) -> None:
    status, answer = call(f"{stack.hxgw_url}/v1/embeddings", stack.client_key, EMBED)
    assert status == 200, answer
    assert len(answer["data"][0]["embedding"]) == 1024


def test_embeddings_are_demo_upstreams_vectors(stack: Stack) -> None:
    _, via_gateway = call(f"{stack.hxgw_url}/v1/embeddings", stack.client_key, EMBED)
    _, direct = call(f"{stack.embed_url}/v1/embeddings", "demo-needs-no-key", EMBED)
    assert via_gateway["data"][0]["embedding"] == direct["data"][0]["embedding"]


def test_embeddings_through_the_sdk(client: OpenAI) -> None:
    answer = client.embeddings.create(model="emb-premium", input="HX-OK")
    assert len(answer.data[0].embedding) == 1024


def test_chat_on_the_group_answers_hx_ok(client: OpenAI) -> None:
    answer = client.chat.completions.create(model="hx-chat", **CHAT)
    assert answer.choices[0].message.content == "HX-OK"


def test_chat_is_answered_by_litellms_mock_not_a_backend(client: OpenAI) -> None:
    # demo-upstream would echo this prompt; LiteLLM's mock_response says HX-OK.
    messages = [{"role": "user", "content": "Say something else."}]
    answer = client.chat.completions.create(model="hx-chat", messages=messages)
    assert answer.choices[0].message.content == "HX-OK"


def test_chat_by_group_header_without_model_answers_hx_ok(stack: Stack) -> None:
    status, answer = call(
        f"{stack.hxgw_url}/v1/chat/completions",
        stack.client_key,
        CHAT,
        headers={"X-HX-Model-Group": "hx-chat"},
    )
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == "HX-OK"
    assert answer["model"] in {"llm02-phi3", "llm01-llama3.2-3b"}


def test_a_group_model_litellm_lacks_is_failed_over_to_the_next(client: OpenAI) -> None:
    # LiteLLM answers it 400 "Invalid model name passed in model=...": the registry's
    # mistake, which the group's next model makes good.
    answer = client.chat.completions.with_raw_response.create(model="hx-chat-one-gone", **CHAT)
    assert answer.headers["X-HX-Failovers"] == "1"
    assert answer.parse().model == "llm01-llama3.2-3b"


def test_a_prompt_too_long_for_a_group_model_goes_to_the_next(client: OpenAI) -> None:
    # LiteLLM's ContextWindowExceededError (its mock of one): a 400 for that model alone.
    answer = client.chat.completions.with_raw_response.create(model="hx-chat-short", **CHAT)
    assert answer.headers["X-HX-Failovers"] == "1"
    assert answer.parse().model == "llm01-llama3.2-3b"


def test_chat_pinned_to_a_model_is_answered_by_it(client: OpenAI) -> None:
    answer = client.chat.completions.create(model="llm01-llama3.2-3b", **CHAT)
    assert answer.model == "llm01-llama3.2-3b"
    assert answer.choices[0].message.content == "HX-OK"


def test_streamed_chat_sends_chunks_usage_then_done(stack: Stack) -> None:
    body = {"model": "hx-chat", "stream": True, "stream_options": {"include_usage": True}, **CHAT}
    request = urllib.request.Request(
        f"{stack.hxgw_url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {stack.client_key}", "Content-Type": "application/json"},
    )
    with OPENER.open(request, timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = [line[5:].strip().decode() for line in resp if line.startswith(b"data:")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) >= 2
    deltas = [choice["delta"] for chunk in chunks for choice in chunk["choices"]]
    assert "".join(delta.get("content") or "" for delta in deltas) == "HX-OK"
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_streamed_chat_through_the_sdk(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="hx-chat", stream=True, stream_options={"include_usage": True}, **CHAT
    )
    with stream:
        chunks = list(stream)
    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    assert text == "HX-OK"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_litellm_refuses_the_client_key(stack: Stack) -> None:
    # LiteLLM 1.102 without a database answers 400 {"type": "no_db_connection"}
    # to any key but its master key; any 4xx is a refusal.
    status, answer = call(f"{stack.litellm_url}/v1/models", stack.client_key)
    assert 400 <= status < 500, answer
    assert "error" in answer
    chat = {"model": "llm02-phi3", **CHAT}
    status, answer = call(f"{stack.litellm_url}/v1/chat/completions", stack.client_key, chat)
    assert 400 <= status < 500, answer
    assert "choices" not in answer


def test_litellm_accepts_its_master_key(stack: Stack) -> None:
    status, answer = call(f"{stack.litellm_url}/v1/models", stack.litellm_key)
    assert status == 200, answer
    assert len(answer["data"]) > 0


def test_hxgw_refuses_the_upstream_key(stack: Stack) -> None:
    status, answer = call(f"{stack.hxgw_url}/v1/models", stack.litellm_key)
    assert status == 401, answer


def test_litellm_requires_input_not_prompt_for_embeddings(stack: Stack) -> None:
    body = {"model": "emb-premium", "prompt": "HX-OK"}
    status, answer = call(f"{stack.litellm_url}/v1/embeddings", stack.litellm_key, body)
    assert status == 400, answer
    assert answer["error"]["param"] == "input"


def test_seed_rename_to_prompt_gets_litellms_400_through_hxgw(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.embeddings.create(model="emb-premium-as-prompt", input="HX-OK")
    assert "'input'" in raised.value.message


def test_no_key_reaches_any_log(stack: Stack) -> None:
    call(f"{stack.hxgw_url}/v1/chat/completions", stack.client_key, {"model": "hx-chat", **CHAT})
    call(f"{stack.hxgw_url}/v1/chat/completions", stack.client_key + "x", CHAT)
    for log in stack.logs:
        text = log.read_text(errors="replace")
        for name, key in (("client key", stack.client_key), ("LiteLLM key", stack.litellm_key)):
            leaked = key in text  # not asserted directly: a failure would print the key
            assert not leaked, f"the {name} appears in {log.name}"


def test_anthropic_messages_through_hxgw_are_answered_by_litellm(stack: Stack) -> None:
    claude = anthropic.Anthropic(base_url=stack.hxgw_url, api_key=stack.client_key,
                                 max_retries=0)
    messages = [{"role": "user", "content": "Say HX-OK"}]
    reply = claude.messages.create(model="hx-chat", max_tokens=16, messages=messages)
    assert reply.content[0].text == "HX-OK"  # type: ignore[union-attr]
    # Streamed, hxgw relays what LiteLLM sends for its mock, event for event (this
    # LiteLLM's mock streams a Messages request as no events at all, directly too).
    direct = anthropic.Anthropic(base_url=stack.litellm_url, api_key=stack.litellm_key,
                                 max_retries=0)
    with direct.messages.stream(model="llm02-phi3", max_tokens=16, messages=messages) as stream:
        expected = [event.type for event in stream]
    with claude.messages.stream(model="hx-chat", max_tokens=16, messages=messages) as stream:
        relayed = [event.type for event in stream]
    assert relayed == expected


def test_responses_through_hxgw_are_answered_by_litellm_with_ids_bound_to_the_model(
    client: OpenAI,
) -> None:
    response = client.responses.create(model="hx-chat", input="Say HX-OK")
    assert response.output_text == "HX-OK"
    bound = unbind(response.id)  # the gateway's id, naming the model that made it
    assert bound is not None and bound.target in {"llm02-phi3", "llm01-llama3.2-3b"}


def test_a_streamed_response_gets_litellms_own_answer(stack: Stack, client: OpenAI) -> None:
    # This LiteLLM's mock cannot stream the Responses API (a 500, directly too): with one
    # candidate, hxgw passes the upstream's error on as it came.
    direct = OpenAI(base_url=f"{stack.litellm_url}/v1", api_key=stack.litellm_key,
                    max_retries=0)
    with pytest.raises(InternalServerError) as expected:
        direct.responses.create(model="llm02-phi3", input="Say HX-OK", stream=True)
    with pytest.raises(InternalServerError) as relayed:
        client.responses.create(model="llm02-phi3", input="Say HX-OK", stream=True)
    assert relayed.value.message == expected.value.message


def test_a_request_litellm_fails_alike_on_every_model_opens_no_circuit(stack: Stack) -> None:
    # LiteLLM answers a web_search_options that is no object with a 500, whichever the
    # model: the request's fault, which a client retrying it must not make every model's.
    body = CHAT | {"model": "hx-chat", "web_search_options": 5}
    for _ in range(6):  # one past circuit_breaker.failures
        status, answer = call(f"{stack.hxgw_url}/v1/chat/completions", stack.client_key, body)
        assert status == 502 and len(answer["error"]["tried"]) == 2, answer
    request = urllib.request.Request(f"{stack.hxgw_url}/metrics",
                                     headers={"Authorization": f"Bearer {stack.client_key}"})
    with OPENER.open(request, timeout=30) as resp:
        metrics = resp.read().decode()
    for model in ("llm02-phi3", "llm01-llama3.2-3b"):
        assert f'hxgw_circuit_state{{model="{model}"}} 0.0' in metrics
