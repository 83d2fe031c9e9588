"""The per-request figures, as a Prometheus scrape reads them."""

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


def test_tokens_are_read_from_a_usage_with_spaces_and_details():
    metrics = Metrics(HealthBook(), lambda: 0)
    metrics.count_tokens("m", b'"usage": {"prompt_tokens_details": {"cached_tokens": 4}, '
                              b'"prompt_tokens" : 12, "completion_tokens":\n 7, "total_tokens": 19}')
    samples = _samples(metrics)
    assert samples["hxgw_tokens_total", (("kind", "prompt"), ("model", "m"))] == 12
    assert samples["hxgw_tokens_total", (("kind", "completion"), ("model", "m"))] == 7


def test_requests_are_counted_by_status_and_tokens_by_kind():
    metrics = Metrics(HealthBook(), lambda: 0)
    for status in (200, 200, 502):
        metrics.request_finished("chat", "g", "m", status, 0.01, 0.005, 0.0001)
    metrics.count_tokens("m", b'"usage":{"prompt_tokens":5,"completion_tokens":2}')
    metrics.count_tokens("m", b'"usage":{"prompt_tokens":1,"completion_tokens":3}')
    samples = _samples(metrics)
    base = (("endpoint", "chat"), ("group", "g"), ("model", "m"))
    assert samples["hxgw_requests_total", (*base, ("status", "200"))] == 2
    assert samples["hxgw_requests_total", (*base, ("status", "502"))] == 1
    assert samples["hxgw_tokens_total", (("kind", "prompt"), ("model", "m"))] == 6
    assert samples["hxgw_tokens_total", (("kind", "completion"), ("model", "m"))] == 5
    assert samples["hxgw_gateway_overhead_seconds_count", ()] == 3
    assert samples["hxgw_time_to_first_byte_seconds_count", (("endpoint", "chat"), ("model", "m"))] == 3


def _tokens(metrics: Metrics, model: str) -> tuple[float, float]:
    samples = _samples(metrics)
    return (
        samples["hxgw_tokens_total", (("kind", "prompt"), ("model", model))],
        samples["hxgw_tokens_total", (("kind", "completion"), ("model", model))],
    )


def test_tokens_are_read_from_a_usage_that_names_completion_tokens_first():
    metrics = Metrics(HealthBook(), lambda: 0)
    metrics.count_tokens("m", b'"usage":{"completion_tokens":9,"prompt_tokens":12,"total_tokens":21}}')
    assert _tokens(metrics, "m") == (12, 9)


def test_tokens_are_read_from_a_usage_with_other_fields_between_the_counts():
    metrics = Metrics(HealthBook(), lambda: 0)
    metrics.count_tokens("m", b'"usage":{"prompt_tokens":4,"total_tokens":10,"completion_tokens":6}')
    assert _tokens(metrics, "m") == (4, 6)


def test_an_embeddings_usage_counts_its_prompt_tokens_alone():
    metrics = Metrics(HealthBook(), lambda: 0)
    metrics.count_tokens("e", b'"usage":{"prompt_tokens":30,"total_tokens":30}}')
    assert _tokens(metrics, "e") == (30, 0)
