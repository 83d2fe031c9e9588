"""Config loading: defaults, environment overrides, and one clear message per mistake."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from hxgw.config import load_config
from hxgw.config.reader import Problems
from hxgw.config.yaml_file import read_yaml
from hxgw.errors import ConfigError
from tests.fixtures import DEFAULT_MODELS, DEFAULT_ROUTING, write_config

ENV = {"MASTER_KEY": "sk-unit-test-key"}


def _problems(directory: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(directory, ENV if env is None else env)
    return str(caught.value).splitlines()


def _routing(**routing: object) -> dict[str, object]:
    return {"routing": DEFAULT_ROUTING["routing"] | routing}


def test_the_shipped_example_config_loads():
    config = load_config("etc/hxgw", ENV)
    assert config.routing.default_group == "hx-chat"
    assert config.models["emb-premium"].mode == "embedding"


def test_a_readiness_stale_after_no_longer_than_its_interval_is_a_problem(tmp_path: Path):
    # Probed once a minute, answers older than 15 s: unready 45 s of every idle minute.
    write_config(tmp_path, "http://127.0.0.1:1",
                 gateway={"readiness": {"interval": 60, "stale_after": 15}})
    (problem,) = _problems(tmp_path)
    assert problem == (
        "gateway.yaml: readiness.stale_after: must be longer than readiness.interval (60 s), "
        "or an idle gateway is unready between its probes: give it at least 180 s")


def test_a_group_named_null_or_a_number_is_a_problem_not_a_group_named_none(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing.read_text().replace(
        "  groups:\n", "  groups:\n    null: [alpha]\n    7: [alpha]\n", 1))
    assert _problems(tmp_path) == [
        "routing.yaml: routing.groups: a name must be a non-empty string, got null",
        "routing.yaml: routing.groups: a name must be a non-empty string, got 7"]


def test_defaults_apply_without_gateway_yaml(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "gateway.yaml").unlink()
    config = load_config(tmp_path, ENV)
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 4010)
    assert config.upstreams["default"].url == "http://127.0.0.1:4000"
    assert config.timeouts.first_byte == 120.0
    assert config.drain_timeout == 20.0


def test_environment_overrides_upstream_listen_and_log_level(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    env = ENV | {"HX_LITELLM_UPSTREAM": "http://10.1.2.3:4000/", "HX_HOST": "127.0.0.2",
                 "HX_PORT": "4999", "LOG_LEVEL": "DEBUG"}
    config = load_config(tmp_path, env)
    assert config.upstreams["default"].url == "http://10.1.2.3:4000"
    assert (config.listen.host, config.listen.port) == ("127.0.0.2", 4999)
    assert config.logging.level == "debug"


@pytest.mark.parametrize(("host", "problem"), [
    ("127.0.0.1:4322", "must be a bare address, without brackets or a port (the port is "
                       "listen.port, or HX_PORT): use '127.0.0.1'"),
    ("[::1]", "must be a bare address, without brackets or a port (the port is listen.port, "
              "or HX_PORT): use '::1'"),
    ("http://gw.example", "must be an address (a name or an IP), not a URL: got "
                          "'http://gw.example'"),
])
def test_a_listen_host_that_is_no_address_is_a_problem(tmp_path: Path, host: str,
                                                        problem: str):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"listen": {"host": host}})
    assert _problems(tmp_path) == [f"gateway.yaml: listen.host: {problem}"]


@pytest.mark.parametrize("host", ["::", "::1", "0.0.0.0", "localhost", "gw-1.example.com"])
def test_a_listen_host_may_be_a_name_or_an_ip_address(tmp_path: Path, host: str):
    write_config(tmp_path, "http://127.0.0.1:1")
    assert load_config(tmp_path, ENV | {"HX_HOST": host}).listen.host == host


@pytest.mark.parametrize("port", ["99999", "-1", "http", "٤٠١٠"])
def test_an_hx_port_that_is_no_port_is_a_problem(tmp_path: Path, port: str):
    write_config(tmp_path, "http://127.0.0.1:1")
    (problem,) = _problems(tmp_path, ENV | {"HX_PORT": port})
    assert problem == f"environment: HX_PORT: must be a port number (0-65535), got {port!r}"


def test_the_log_level_in_gateway_yaml_may_be_upper_case_as_in_the_env_file(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"logging": {"level": "WARNING"}})
    assert load_config(tmp_path, ENV).logging.level == "warning"


def test_the_upstream_key_falls_back_to_the_master_key(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    assert load_config(tmp_path, ENV).upstreams["default"].key == "sk-unit-test-key"
    env = ENV | {"HX_UPSTREAM_KEY": "sk-upstream"}
    assert load_config(tmp_path, env).upstreams["default"].key == "sk-upstream"


def test_the_master_key_is_held_only_as_a_digest(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (key,) = load_config(tmp_path, ENV).keys
    assert key.name == "master"
    assert key.digest == hashlib.sha256(b"sk-unit-test-key").digest()
    assert "sk-unit-test-key" not in repr(key)


def test_no_client_key_at_all_is_an_error(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    assert ("gateway.yaml: auth: no client key: set MASTER_KEY in the environment (under "
            "systemd, in /etc/hx-gateway-ml.env), or auth.keys_file, or make one: hxgw keys "
            "create NAME") in _problems(tmp_path, env={})


def test_missing_required_files_are_named(tmp_path: Path):
    assert _problems(tmp_path) == [
        f"routing.yaml: file not found in {tmp_path}",
        f"model_registry.yaml: file not found in {tmp_path}",
    ]


def test_a_config_directory_that_is_not_there_is_one_problem_naming_it(tmp_path: Path):
    missing = tmp_path / "etc-hxgw"
    (problem,) = _problems(missing, env={})
    assert problem.startswith(f"{missing}: no such config directory")


def test_a_config_directory_that_is_a_file_is_said_to_be_one(tmp_path: Path):
    file = tmp_path / "routing.yaml"
    file.write_text("routing: {}\n")
    (problem,) = _problems(file, env={})
    assert problem.startswith(f"{file}: is a file, not a config directory")


def test_invalid_yaml_names_the_line(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "routing.yaml").write_text("routing:\n  groups: [a, b\n")
    (problem,) = [p for p in _problems(tmp_path) if "invalid YAML" in p]
    assert problem.startswith("routing.yaml: line 3, column 1: invalid YAML")


def test_a_key_given_twice_in_one_mapping_is_a_problem_naming_its_line(tmp_path: Path):
    # YAML keeps the last: a line added below an old one would win without a word.
    write_config(tmp_path, "http://127.0.0.1:1")
    text = (tmp_path / "routing.yaml").read_text()
    doubled = text.replace("  default_group:", "  default_group: other\n  default_group:", 1)
    assert doubled != text
    (tmp_path / "routing.yaml").write_text(doubled)
    (problem,) = [p for p in _problems(tmp_path) if "invalid YAML" in p]
    assert problem.startswith("routing.yaml: line ")
    assert problem.endswith("invalid YAML: 'default_group' is given twice in this mapping")


def test_a_merged_mapping_may_still_override_what_it_merges(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "extra.yaml").write_text("a: &base {x: 1}\nb:\n  <<: *base\n  x: 2\n")
    problems = Problems()
    doc = read_yaml(tmp_path / "extra.yaml", problems, [], required=True)
    assert doc == {"a": {"x": 1}, "b": {"x": 2}}


def test_yaml_nested_too_deeply_is_a_problem_not_a_crash(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "routing.yaml").write_text("[" * 5000 + "]" * 5000)
    assert "routing.yaml: invalid YAML: nested too deeply" in _problems(tmp_path)


def test_a_model_listed_twice_in_a_group_or_the_failover_order_is_a_problem(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", routing=_routing(
        groups={"chat": ["alpha", "beta", "alpha"]}, failover_order=["gamma", "gamma"]))
    problems = _problems(tmp_path)
    assert "routing.yaml: routing.groups.chat[2]: 'alpha' is listed twice" in problems
    assert "routing.yaml: routing.failover_order[1]: 'gamma' is listed twice" in problems


def test_a_group_written_as_a_mapping_needs_a_model_too(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", routing=_routing(
        groups={"chat": ["alpha"], "empty": {"models": []}}))
    assert "routing.yaml: routing.groups.empty.models: a group needs at least one model" in (
        _problems(tmp_path))


def test_unknown_keys_are_rejected_with_their_path(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", routing=_routing(stratgy="failover"),
                 gateway={"timeouts": {"conect": 1}})
    problems = _problems(tmp_path)
    assert any(p.startswith("routing.yaml: routing.stratgy: unknown key (did you mean "
                            "'strategy'?) (known keys: ") for p in problems)
    assert any(p.startswith("gateway.yaml: timeouts.conect: unknown key") for p in problems)


@pytest.mark.parametrize(("rate", "said"), [
    (0, "must be greater than 0, got 0"), (1.5, "1.5"), ("half", "must be a number")])
def test_a_circuit_breaker_error_rate_is_a_share_above_0_up_to_1(
    tmp_path: Path, rate: object, said: str
):
    write_config(tmp_path, "http://127.0.0.1:1", routing=_routing(
        circuit_breaker={"error_rate": rate}))
    (problem,) = _problems(tmp_path)
    assert problem.startswith("routing.yaml: routing.circuit_breaker.error_rate: ")
    assert said in problem


def test_a_circuit_breaker_error_rate_is_read(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", routing=_routing(
        circuit_breaker={"error_rate": 0.25}))
    assert load_config(tmp_path, ENV).routing.health.breaker_error_rate == 0.25


def test_a_group_naming_an_unknown_model_is_reported_with_its_index(tmp_path: Path):
    routing = _routing(groups={"chat": ["alpha", "llm03"]}, default_group="chat")
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing)
    assert _problems(tmp_path) == ["routing.yaml: routing.groups.chat[1]: unknown model 'llm03'"]


def test_a_model_name_that_looks_like_a_typo_gets_a_hint(tmp_path: Path):
    routing = _routing(groups={"chat": ["alpah"]}, default_group="chat")
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing)
    assert _problems(tmp_path) == [
        "routing.yaml: routing.groups.chat[0]: unknown model 'alpah' (did you mean 'alpha'?)"]


def test_every_problem_is_reported_at_once(tmp_path: Path):
    models = [{"name": "alpha", "tier_score": 2, "specializations": "coding", "mode": "video"}]
    routing = {"routing": {"strategy": "random", "default_group": "nope",
                           "failover_order": ["zeta"], "groups": {"chat": ["alpha"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing,
                 gateway={"timeouts": {"idle": -1}, "limits": {"max_body_bytes": "big"}})
    assert sorted(_problems(tmp_path)) == sorted([
        "model_registry.yaml: models.alpha.tier_score: must be between 0.0 and 1.0, got 2",
        "model_registry.yaml: models.alpha.specializations: must be a list of strings, got a string",
        "model_registry.yaml: models.alpha.mode: must be one of chat, embedding, completion, "
        "audio_transcription, audio_speech, image_generation, moderation, rerank, got 'video'",
        "routing.yaml: routing.strategy: must be one of failover, round-robin, weighted, "
        "least-busy, latency, ml-based-routing, got 'random'",
        "routing.yaml: routing.failover_order[0]: unknown model 'zeta'",
        "routing.yaml: routing.default_group: unknown group 'nope'",
        "gateway.yaml: timeouts.idle: must be greater than 0, got -1",
        "gateway.yaml: limits.max_body_bytes: must be an integer, got the string 'big'",
    ])


def test_wrong_types_name_what_was_found(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"listen": {"port": "4010"}})
    assert _problems(tmp_path) == [
        "gateway.yaml: listen.port: must be an integer, got the string '4010'"]


def test_a_long_string_given_for_a_number_is_shown_cut_and_said_to_be_cut(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"listen": {"port": "4" * 100}})
    assert _problems(tmp_path) == [
        f"gateway.yaml: listen.port: must be an integer, got the string '{'4' * 40}'..."]


def test_a_duration_written_with_its_unit_is_told_the_number_is_in_seconds(tmp_path: Path):
    # `idle: 2m`, as the CLI's --since 24h might suggest, is a string to YAML.
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"timeouts": {"idle": "2m"}})
    assert _problems(tmp_path) == [
        "gateway.yaml: timeouts.idle: must be a number of seconds, got the string '2m'"]


def test_a_model_named_like_a_group_is_ambiguous(tmp_path: Path):
    routing = _routing(groups={"alpha": ["alpha"], "chat": ["beta"]})
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing)
    assert _problems(tmp_path) == [
        "routing.yaml: routing.groups.alpha: 'alpha' is also a model name; names must differ"]


@pytest.mark.parametrize("name", ["mödel", "my model", "a;b", "a=b", "a,b", "tab\tbed"])
def test_a_model_name_that_cannot_go_in_a_response_header_is_rejected(tmp_path: Path, name: str):
    model = {"name": name, "tier_score": 0.5, "specializations": [], "upstream_model": "m"}
    routing = {"routing": {"default_group": "g", "groups": {"g": [name]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=[model], routing=routing)
    (problem,) = _problems(tmp_path)
    assert problem.startswith(f"model_registry.yaml: models.{name}.name: {name!r}: a name goes in")


def test_a_group_name_that_cannot_go_in_a_response_header_is_rejected(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", routing=_routing(groups={"chät": ["alpha"]}))
    assert any(p.startswith("routing.yaml: routing.groups.chät: 'chät': a name goes in")
               for p in _problems(tmp_path))


def test_model_names_with_slashes_colons_and_at_signs_are_fine(tmp_path: Path):
    name = "openai/llama3.2:3b@eu"
    model = {"name": name, "tier_score": 0.5, "specializations": []}
    routing = {"routing": {"default_group": "g", "groups": {"g": [name]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=[model], routing=routing)
    assert list(load_config(tmp_path, ENV).models) == [name]


def test_duplicate_model_names_are_rejected(tmp_path: Path):
    model = {"name": "alpha", "tier_score": 0.5, "specializations": []}
    routing = {"routing": {"default_group": "g", "groups": {"g": ["alpha"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=[model, model], routing=routing)
    assert _problems(tmp_path) == ["model_registry.yaml: models.alpha.name: duplicate model name 'alpha'"]


def test_a_model_on_an_unknown_upstream_is_rejected(tmp_path: Path):
    models = [{"name": "alpha", "tier_score": 0.5, "specializations": [], "upstream": "far"}]
    routing = {"routing": {"default_group": "g", "groups": {"g": ["alpha"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing)
    assert _problems(tmp_path) == ["model_registry.yaml: models.alpha.upstream: unknown upstream "
                                   "'far'; gateway.yaml has default"]


def test_a_model_naming_no_upstream_when_there_is_no_default_says_it_means_the_default(
    tmp_path: Path,
):
    models = [{"name": "alpha", "tier_score": 0.5, "specializations": []}]
    routing = {"routing": {"default_group": "g", "groups": {"g": ["alpha"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing,
                 gateway={"upstreams": {"other": {"url": "http://127.0.0.1:2"}}})
    assert _problems(tmp_path) == [
        "model_registry.yaml: models.alpha.upstream: unknown upstream 'default' (where a model "
        "names none); gateway.yaml has other"]


def test_a_bad_upstream_url_is_rejected(tmp_path: Path):
    write_config(tmp_path, "ftp://example")
    assert _problems(tmp_path) == [
        "gateway.yaml: upstreams.default.url: must be an http(s) URL, got 'ftp://example'"]


def test_an_upstream_port_out_of_range_is_rejected(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:99999")
    assert _problems(tmp_path) == [
        "gateway.yaml: upstreams.default.url: must be an http(s) URL, "
        "got 'http://127.0.0.1:99999'"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:4000/v1", "http://127.0.0.1:4000/v1/"])
def test_an_upstream_url_ending_in_v1_is_rejected_with_the_url_to_use(tmp_path: Path, url: str):
    write_config(tmp_path, "http://127.0.0.1:1")
    assert _problems(tmp_path, ENV | {"HX_LITELLM_UPSTREAM": url}) == [
        "environment: HX_LITELLM_UPSTREAM: ends in /v1, which the gateway adds itself: "
        "use 'http://127.0.0.1:4000'"]


def test_an_upstream_url_with_credentials_is_rejected_without_echoing_them(tmp_path: Path):
    write_config(tmp_path, "http://user:UpPass@127.0.0.1:4000")
    problems = _problems(tmp_path)
    assert problems == [
        "gateway.yaml: upstreams.default.url: must not carry credentials (user:password@); "
        "the upstream's key goes in the variable key_env names, sent as a bearer key"]


def test_an_upstream_key_env_naming_an_unset_variable_is_rejected(tmp_path: Path):
    upstreams = {"default": {"url": "http://127.0.0.1:1", "key_env": "HX_NOT_SET_ANYWHERE"}}
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"upstreams": upstreams})
    assert _problems(tmp_path) == [
        "gateway.yaml: upstreams.default.key_env: names 'HX_NOT_SET_ANYWHERE', which is not set "
        "in the gateway's environment (read when it starts: a variable added to its "
        "EnvironmentFile takes a restart, not a reload)"]


def test_the_environment_s_upstream_key_goes_only_to_the_default_upstream(tmp_path: Path):
    # HX_UPSTREAM_KEY (or MASTER_KEY) is the LiteLLM's: another upstream, a provider of its
    # own, gets a key only through its own key_env.
    upstreams = {"default": {"url": "http://127.0.0.1:1"}, "other": {"url": "http://127.0.0.1:2"}}
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"upstreams": upstreams})
    config = load_config(tmp_path, {**ENV, "HX_UPSTREAM_KEY": "sk-litellm"})
    assert (config.upstreams["default"].key, config.upstreams["other"].key) == ("sk-litellm", None)


def test_hx_litellm_upstream_moves_only_the_default_upstream(tmp_path: Path):
    upstreams = {"default": {"url": "http://127.0.0.1:1"}, "other": {"url": "http://127.0.0.1:2"}}
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"upstreams": upstreams})
    config = load_config(tmp_path, {**ENV, "HX_LITELLM_UPSTREAM": "http://10.1.2.3:4000"})
    assert config.upstreams["default"].url == "http://10.1.2.3:4000"
    assert config.upstreams["other"].url == "http://127.0.0.1:2"


def test_a_queue_timeout_over_an_hour_is_a_problem(tmp_path: Path):
    upstreams = {"default": {"url": "http://127.0.0.1:1", "queue_timeout": 3601}}
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"upstreams": upstreams})
    assert _problems(tmp_path) == [
        "gateway.yaml: upstreams.default.queue_timeout: must be between 0 and 3600, got 3601"]


def test_an_upstream_key_that_cannot_be_a_header_is_rejected(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    problems = _problems(tmp_path, {**ENV, "HX_UPSTREAM_KEY": "sk-1\r\nX-Evil: 1"})
    assert problems == [
        "environment: HX_UPSTREAM_KEY: the upstream key has characters an HTTP header cannot "
        "carry (spaces, control characters or non-ASCII) (an EnvironmentFile keeps everything "
        "after the `=`, an inline `# comment` too: put comments on lines of their own)"]


def test_a_master_key_with_an_inline_comment_is_rejected_as_the_environment_s(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    env = {"MASTER_KEY": "sk-abcdefghijklmnop # the master key", "HX_UPSTREAM_KEY": "sk-up"}
    assert _problems(tmp_path, env) == [
        "environment: MASTER_KEY: has characters an HTTP header cannot carry (spaces, control "
        "characters or non-ASCII) (an EnvironmentFile keeps everything after the `=`, an "
        "inline `# comment` too: put comments on lines of their own)"]


def test_a_bad_master_key_that_is_the_upstream_key_too_is_said_once_by_its_name(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    assert _problems(tmp_path, {"MASTER_KEY": "a b"}) == [
        "environment: MASTER_KEY: has characters an HTTP header cannot carry (spaces, control "
        "characters or non-ASCII) (an EnvironmentFile keeps everything after the `=`, an "
        "inline `# comment` too: put comments on lines of their own)"]


def test_an_upstream_takes_its_cap_queue_and_queue_timeout(tmp_path: Path):
    upstreams = {"default": {"url": "http://127.0.0.1:1", "max_concurrent": 50,
                             "max_queued": 0, "queue_timeout": 0.5}}
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"upstreams": upstreams})
    upstream = load_config(tmp_path, ENV).upstreams["default"]
    assert (upstream.max_concurrent, upstream.max_queued, upstream.queue_timeout) == (50, 0, 0.5)


def test_an_upstream_without_a_cap_has_the_default_queue(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    upstream = load_config(tmp_path, ENV).upstreams["default"]
    assert (upstream.max_concurrent, upstream.max_queued, upstream.queue_timeout) == (None, 1000, 5.0)


def test_bad_upstream_caps_are_reported_with_their_paths(tmp_path: Path):
    upstreams = {"default": {"url": "http://127.0.0.1:1", "max_concurrent": 0,
                             "max_queued": -1, "queue_timeout": "soon"}}
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"upstreams": upstreams})
    problems = _problems(tmp_path)
    assert len(problems) == 3
    for key in ("max_concurrent", "max_queued", "queue_timeout"):
        assert any(p.startswith(f"gateway.yaml: upstreams.default.{key}: ") for p in problems)


def test_transform_mistakes_are_reported_per_rewrite(tmp_path: Path):
    models = [{"name": "alpha", "tier_score": 0.5, "specializations": [],
               "transforms": [{"rename": {"input": 3}}, {"drop": "user"}, {"upcase": ["x"]}]}]
    routing = {"routing": {"default_group": "g", "groups": {"g": ["alpha"]}}}
    write_config(tmp_path, "http://127.0.0.1:1", models=models, routing=routing)
    assert _problems(tmp_path) == [
        "model_registry.yaml: models.alpha.transforms[0].rename: new names must be non-empty strings",
        "model_registry.yaml: models.alpha.transforms[1].drop: must be a non-empty list of field names",
        "model_registry.yaml: models.alpha.transforms[2].upcase: unknown rewrite (known: rename, set, drop)",
    ]


def test_a_keys_file_gives_named_keys_with_groups(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    digest = hashlib.sha256(b"sk-bob").hexdigest()
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": [
        {"name": "alice", "key": "sk-alice", "groups": ["chat"]},
        {"name": "bob", "key_sha256": digest},
    ]}))
    keys = {k.name: k for k in load_config(tmp_path, {}).keys}
    assert keys["alice"].may_use("chat") and not keys["alice"].may_use("emb")
    assert keys["bob"].digest == hashlib.sha256(b"sk-bob").digest() and keys["bob"].may_use("x")


def test_a_keys_file_entry_needs_exactly_one_secret(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": [{"name": "alice"}]}))
    assert "keys.yaml: keys[0]: needs exactly one of key, key_sha256" in _problems(tmp_path, {})


def test_a_keys_file_key_may_name_only_groups_routing_has_and_at_least_one(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": [
        {"name": "typo", "key": "sk-typo", "groups": ["chatt"]},
        {"name": "none", "key": "sk-none", "groups": []},
    ]}))
    problems = _problems(tmp_path, {})
    assert "keys.yaml: keys[0].groups[0]: unknown group 'chatt' (did you mean 'chat'?)" in problems
    assert ("keys.yaml: keys[1].groups: names no group: leave groups out for every group, "
            "or name one") in problems


def test_a_bad_hx_litellm_upstream_is_blamed_on_the_environment_not_gateway_yaml(
    tmp_path: Path,
):
    write_config(tmp_path, "http://127.0.0.1:1")
    assert _problems(tmp_path, ENV | {"HX_LITELLM_UPSTREAM": "ftp://x"}) == [
        "environment: HX_LITELLM_UPSTREAM: must be an http(s) URL, got 'ftp://x'"]


def test_a_misspelt_specialization_is_a_problem_naming_the_tasks_the_router_detects(
    tmp_path: Path,
):
    models = [dict(DEFAULT_MODELS[0], specializations=["codng"]), *DEFAULT_MODELS[1:]]
    write_config(tmp_path, "http://127.0.0.1:1", models=models)
    assert _problems(tmp_path, ENV) == [
        "model_registry.yaml: models.alpha.specializations[0]: unknown task 'codng' (did you "
        "mean 'coding'?); the router detects coding, analysis, math, writing, chat, "
        "summarization, translation, embeddings"]


def test_a_group_can_override_the_strategy(tmp_path: Path):
    routing = _routing(groups={"chat": {"models": ["alpha", "beta"], "strategy": "round-robin"},
                               "solo": ["gamma"], "emb": ["embed"]})
    write_config(tmp_path, "http://127.0.0.1:1", routing=routing)
    group = load_config(tmp_path, ENV).routing.groups["chat"]
    assert (group.models, group.strategy) == (("alpha", "beta"), "round-robin")


def test_cors_allows_any_origin_unless_told_which(tmp_path: Path):
    write_config(tmp_path / "a", "http://127.0.0.1:1")
    assert load_config(tmp_path / "a", ENV).cors_origins == ("*",)
    write_config(tmp_path / "b", "http://127.0.0.1:1",
                 gateway={"cors": {"allow_origins": ["https://chat.example.com"]}})
    assert load_config(tmp_path / "b", ENV).cors_origins == ("https://chat.example.com",)


def test_a_cors_origin_with_a_path_is_rejected(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1",
                 gateway={"cors": {"allow_origins": ["https://chat.example.com/app"]}})
    assert _problems(tmp_path) == [
        "gateway.yaml: cors.allow_origins: must be * or an origin such as "
        "https://chat.example.com, got 'https://chat.example.com/app'"]


def test_a_tls_file_that_cannot_be_read_is_named(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1",
                 gateway={"tls": {"cert": "missing.pem", "key": "missing.key"}})
    (problem,) = _problems(tmp_path)
    assert problem.startswith(f"gateway.yaml: tls: cannot load the certificate and key from "
                              f"{tmp_path / 'missing.pem'} and {tmp_path / 'missing.key'}: ")


def test_a_keys_file_that_is_not_there_is_one_problem_naming_the_setting(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1", gateway={"auth": {"keys_file": "keys.yaml"}})
    assert _problems(tmp_path) == [
        f"gateway.yaml: auth.keys_file: no such file: {tmp_path / 'keys.yaml'}"]


def test_routing_settings_written_without_routing_above_them_are_one_problem(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "routing.yaml").write_text("default_group: chat\ngroups: {chat: [alpha]}\n")
    assert _problems(tmp_path) == [
        "routing.yaml: its settings go under 'routing:' (found at the top: default_group, groups)"]


def test_models_written_as_a_mapping_are_one_problem_not_one_per_group_member(tmp_path: Path):
    write_config(tmp_path, "http://127.0.0.1:1")
    (tmp_path / "model_registry.yaml").write_text("models:\n  alpha: {tier_score: 0.5}\n")
    assert _problems(tmp_path) == [
        "model_registry.yaml: models: must be a list of models, got a mapping"]
