"""Each configured model's error and token series, there at 0 from the start and from
the reload that adds the model: a series born at its first event is no increase to
Prometheus, so `rate()` and `increase()` would miss a model's first error.

The kinds known up front are the fixed words; `http_<status>` kinds (which statuses an
upstream sends is not known) still appear at their first event.

A model a reload removes loses the series that never counted anything (they were only
there at 0, and would stay for as long as the process runs, one set for each name ever
configured), and keeps those that did: a counter that vanished would take its last
errors out of an `increase()` over the minutes around the reload, and a request still
running on the old config may yet count one.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

UPSTREAM_ERROR_KINDS = (
    "timeout",
    "connect_error",
    "reset",
    "protocol_error",
    "gateway_key",
    "model_missing",
    "context_length",
    "stream_reset",
    "stream_timeout",
    "stream_error",
)
"""The `hxgw_upstream_errors_total` kinds that are fixed words (hxgw.pipeline.failover.sending,
failures, events)."""


class ModelSeries:
    def __init__(self, errors: Counter, tokens: dict[str, list[int]]) -> None:
        self.errors, self.tokens = errors, tokens
        self.models: frozenset[str] = frozenset()

    def configure(self, models: Iterable[str]) -> None:
        """The config serving now names `models`: theirs at 0, and the removed ones' that
        counted nothing removed (see the module's docstring)."""
        names = frozenset(models)
        gone = self.models - names
        if gone:
            self._forget_unused(gone)
        for model in names - self.models:
            for kind in UPSTREAM_ERROR_KINDS:
                self.errors.labels(model, kind)
            self.tokens.setdefault(model, [0, 0])
        self.models = names

    def _forget_unused(self, gone: frozenset[str]) -> None:
        for family in self.errors.collect():
            for sample in family.samples:
                model = sample.labels["model"]
                if model in gone and sample.value == 0:
                    self.errors.remove(model, sample.labels["kind"])
        for model in gone:
            if self.tokens.get(model) == [0, 0]:
                del self.tokens[model]
