"""The status page's Usage section: hour and day charts per key and per model, names
escaped, and a plain sentence when there is no ledger to chart."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from hxgw.server.openapi import load_document
from hxgw.server.status_page import render_status_html
from hxgw.server.usage_section import FIGURES
from hxgw.store import open_database
from hxgw.usage import Ledger
from hxgw.usage.recent import read_windows
from tests.unit.server.test_openapi import validator
from tests.unit.server.test_status_page import HOSTILE, Page, sample_status
from tests.unit.usage.rows import T0, row

HOUR_START = T0 + 20 - 3600  # the hour window as of T0 + 10: see tests/unit/usage


class Charts(HTMLParser):
    """Each chart of a page: its caption, how many lines it draws, its legend's names."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self._chart: dict[str, Any] | None = None
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "figure" and "chart" in classes:
            self._chart = {"caption": "", "svg": 0, "lines": 0, "legend": []}
        elif self._chart is not None:
            if tag == "figcaption":
                self._in = "caption"
            elif tag == "svg":
                self._chart["svg"] += 1
            elif tag == "polyline":
                self._chart["lines"] += 1
            elif tag == "span" and "key" in classes:
                self._in = "legend"
                self._chart["legend"].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("figcaption", "span"):
            self._in = None
        elif tag == "figure" and self._chart is not None:
            self.charts[self._chart["caption"]] = self._chart
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._chart is not None and self._in == "caption":
            self._chart["caption"] += data
        elif self._chart is not None and self._in == "legend":
            self._chart["legend"][-1] += data


def zeros(n: int) -> list[int]:
    return [0] * n


def window(bucket: int, buckets: int, keys: dict[str, Any], models: dict[str, Any]) -> dict:
    return {"bucket_seconds": bucket, "start": HOUR_START, "buckets": buckets,
            "keys": keys, "models": models}


def key_series(n: int) -> dict[str, Any]:
    return {"requests": [1] * n, "tokens": [15] * n, "cost": [0.25] * n}


def model_series(n: int) -> dict[str, Any]:
    return {**key_series(n), "errors": zeros(n), "failovers": zeros(n),
            "p50_latency": [0.5] * n, "p99_latency": [None] * (n - 1) + [1.5]}


def sample_usage(key: str = "master", model: str = "llm02-phi3") -> dict[str, Any]:
    return {
        "ledger": "on", "as_of": T0, "behind_seconds_at_most": 4.0, "latency_samples": 500,
        "windows": {
            "hour": window(60, 60, {key: key_series(60)}, {model: model_series(60)}),
            "day": window(3600, 24, {key: key_series(24)}, {model: model_series(24)}),
        },
    }


def test_every_figure_is_drawn_for_the_last_hour_and_the_last_day():
    charts = Charts(render_status_html(sample_status(usage=sample_usage()))).charts
    assert len(charts) == 2 * len(FIGURES) == 18
    for title, where, _, _ in FIGURES:
        for span in ("last hour", "last day"):
            chart = charts[f"{title}, {span}"]
            assert chart["svg"] == 1 and chart["lines"] == 1
            assert chart["legend"] == (["master"] if where == "keys" else ["llm02-phi3"])


def test_the_axis_and_the_buckets_read_in_units_and_utc_times():
    html = render_status_html(sample_status(usage=sample_usage()))
    assert "14:07" in html and "15:06" in html  # the hour's first and last minutes
    assert "1,500 ms" not in html and "1.50 s" in html and "500 ms" in html


def test_a_spend_below_a_cent_reads_without_an_exponent():
    usage = sample_usage()
    usage["windows"]["hour"]["keys"]["master"]["cost"] = [0.000042] * 60
    html = render_status_html(sample_status(usage=usage))
    assert "0.000042" in html and "e-05" not in html


def test_a_hostile_key_or_model_name_stays_text():
    html = render_status_html(sample_status(usage=sample_usage(key=HOSTILE, model=HOSTILE)))
    assert "<script" not in html
    charts = Charts(html).charts
    assert charts["Tokens per key, last hour"]["legend"] == [HOSTILE]
    assert charts["Errors per model, last day"]["legend"] == [HOSTILE]


def test_the_page_says_the_charts_lag_the_ledger_by_a_few_seconds():
    text = Page(render_status_html(sample_status(usage=sample_usage()))).all_text
    assert "up to 4 s behind" in text and "at most 500 requests" in text


def test_the_page_says_its_charts_count_every_instance_on_the_store_not_this_one_alone():
    # Two instances on one PostgreSQL: each page's charts showed both instances' requests
    # under this instance's own request count, and nothing said which was which.
    text = Page(render_status_html(sample_status(usage=sample_usage()))).all_text
    assert "every worker and instance writing to its store" in text
    assert "the figures above are this instance's" in text


def test_without_a_ledger_the_section_says_it_is_off():
    html = render_status_html(sample_status(usage={"ledger": "off"}))
    assert "The usage ledger is off" in html and "<svg" not in html


def test_an_unreadable_store_is_named_escaped():
    usage = {"ledger": "unreachable", "error": "SQLite <b>/x</b>: locked"}
    html = render_status_html(sample_status(usage=usage))
    assert "SQLite &lt;b&gt;/x&lt;/b&gt;: locked" in html


def test_a_window_without_requests_says_so():
    usage = sample_usage()
    usage["windows"]["hour"] = window(60, 60, {}, {})
    html = render_status_html(sample_status(usage=usage))
    assert "no requests in this window" in html


def test_what_the_store_gives_is_what_status_json_documents(tmp_path: Path):
    database = open_database(None, tmp_path / "state")
    ledger = Ledger(database, tmp_path / "spool")
    ledger.record(row(0, key_name="master"))
    ledger.record(row(1, model=None, status=429))
    ledger.close()
    usage = read_windows(database, T0 + 10) | {"behind_seconds_at_most": 4.0}
    assert usage["windows"]["hour"]["keys"]["master"]["requests"][59] == 1
    check = validator(load_document(), "/components/schemas/Status")
    assert list(check.iter_errors(sample_status(usage=usage))) == []
    assert not check.is_valid(sample_status(usage={"ledger": "maybe"}))
