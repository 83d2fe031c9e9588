"""The per-request figures, as a Prometheus scrape reads them."""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hxgw.observe.metrics import Metrics
from hxgw.routing.health import HealthBook


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_duration_on_a_bucket_bound_counts_in_that_bucket_and_every_larger_one():
    metrics = Metrics(HealthBook(), lambda: 0)
    metrics.request_finished("chat", "g", "m", 200, 0.25, None, None)
    samples = _samples(metrics)
    def bucket(le: str) -> float:
        labels = (("endpoint", "chat"), ("le", le), ("model", "m"))
        return samples["hxgw_request_duration_seconds_bucket", labels]

    assert (bucket("0.1"), bucket("0.25"), bucket("0.5"), bucket("+Inf")) == (0, 1, 1, 1)
    labels = (("endpoint", "chat"), ("model", "m"))
    assert samples["hxgw_request_duration_seconds_count", labels] == 1
    assert samples["hxgw_request_duration_seconds_sum", labels] == 0.25


def test_requests_are_counted_by_status_and_tokens_by_kind():
    metrics = Metrics(HealthBook(), lambda: 0)
    for status in (200, 200, 502):
        metrics.request_finished("chat", "g", "m", status, 0.01, 0.005, 0.0001)
    metrics.count_tokens("m", 5, 2)
    metrics.count_tokens("m", 1, 3)
    samples = _samples(metrics)
    base = (("endpoint", "chat"), ("group", "g"), ("model", "m"))
    assert samples["hxgw_requests_total", (*base, ("status", "200"))] == 2
    assert samples["hxgw_requests_total", (*base, ("status", "502"))] == 1
    assert samples["hxgw_tokens_total", (("kind", "prompt"), ("model", "m"))] == 6
    assert samples["hxgw_tokens_total", (("kind", "completion"), ("model", "m"))] == 5
    assert samples["hxgw_gateway_overhead_seconds_count", ()] == 3
    assert samples["hxgw_time_to_first_byte_seconds_count", (("endpoint", "chat"), ("model", "m"))] == 3


def test_each_key_has_its_requests_tokens_and_spend_by_name():
    metrics = Metrics(HealthBook(), lambda: 0)
    metrics.key_used("app", 10, 5, 0.25)
    metrics.key_used("app", 2, 1, 0.5)
    samples = _samples(metrics)
    assert samples["hxgw_key_requests_total", (("key", "app"),)] == 2
    assert samples["hxgw_key_tokens_total", (("key", "app"), ("kind", "prompt"))] == 12
    assert samples["hxgw_key_tokens_total", (("key", "app"), ("kind", "completion"))] == 6
    assert samples["hxgw_key_spend_total", (("key", "app"),)] == 0.75


def test_counters_have_no_created_series_beside_their_totals():
    metrics = Metrics(HealthBook(), lambda: 0)
    metrics.reloads.labels("ok").inc()
    text = generate_latest(metrics.registry).decode()
    assert 'hxgw_config_reloads_total{result="ok"} 1.0' in text
    assert "_created" not in text


def test_a_model_a_reload_removed_has_no_circuit_series_though_a_late_request_asks_for_it():
    # A request still on the old config failed over to it: its open circuit had been
    # exported (and alerted on) for a model the config no longer has.
    health = HealthBook()
    health.configure(health.settings, ["alpha", "beta"])
    metrics = Metrics(health, lambda: 0)
    health.configure(health.settings, ["alpha"])
    health["alpha"].started()
    health["beta"].failed(0.0)
    circuits = {labels for name, labels in _samples(metrics) if name == "hxgw_circuit_state"}
    assert circuits == {(("model", "alpha"),)}
