"""The status page: every value escaped, every model and group shown, trouble marked."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from hxgw.server.openapi import load_document
from hxgw.server.status_page import render_status_html

HOSTILE = '<script>alert("x")</script>'


def sample_status(**overrides: Any) -> dict[str, Any]:
    """A /status.json document as the gateway serves it (the shape the OpenAPI document gives)."""
    status: dict[str, Any] = {
        "version": "0.1.0",
        "uptime_seconds": 93784.5,
        "config_generation": 3,
        "last_reload": {"result": "ok", "message": "ok, generation 3",
                        "at": "2026-11-23T07:44:54Z"},
        "draining": False,
        "listen": "0.0.0.0:4010",
        "upstreams": [
            {"name": "default", "url": "http://127.0.0.1:4000", "reachable": True,
             "last_ok_seconds_ago": 1.5},
            {"name": "backup", "url": "http://10.0.0.7:4000", "reachable": None,
             "last_ok_seconds_ago": None},
        ],
        "requests": {"total": 18231, "per_second": 12.75, "inflight": 4, "active_streams": 2},
        "models": [
            {"name": "llm02-phi3", "upstream_model": "phi3", "groups": ["hx-chat", "hx-coding"],
             "circuit": "closed", "ewma_ttfb_ms": 182.4, "ewma_latency_ms": 1420.0,
             "error_rate": 0.004, "inflight": 3, "requests": 12011},
            {"name": "llm01-llama3.2-3b", "upstream_model": "llama3.2:3b",
             "groups": ["hx-chat", "hx-coding"], "circuit": "open", "ewma_ttfb_ms": 950.0,
             "ewma_latency_ms": 4100.2, "error_rate": 0.62, "inflight": 0, "requests": 5210},
            {"name": "emb-premium", "upstream_model": "emb-premium", "groups": ["hx-embed"],
             "circuit": "half_open", "ewma_ttfb_ms": None, "ewma_latency_ms": None,
             "error_rate": 0.0, "inflight": 1, "requests": 1010},
        ],
        "groups": [
            {"name": "hx-chat", "strategy": "ml-based-routing",
             "models": ["llm02-phi3", "llm01-llama3.2-3b"]},
            {"name": "hx-coding", "strategy": "failover",
             "models": ["llm02-phi3", "llm01-llama3.2-3b"]},
            {"name": "hx-embed", "strategy": "failover", "models": ["emb-premium"]},
        ],
    }
    status.update(overrides)
    return status


class Page(HTMLParser):
    """The parts of a rendered page the tests look at: tags with attributes, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def rows(self, kind: str) -> dict[str, dict[str, str | None]]:
        return {attrs[f"data-{kind}"] or "": attrs for tag, attrs in self.tags
                if tag == "tr" and f"data-{kind}" in attrs}

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


def render(**overrides: Any) -> Page:
    return Page(render_status_html(sample_status(**overrides)))


def test_values_are_escaped_so_a_hostile_name_shows_as_text():
    status = sample_status()
    status["models"][0]["name"] = HOSTILE
    status["groups"][0]["models"][0] = HOSTILE
    status["upstreams"][0]["url"] = '"><img src=x onerror=alert(1)>'
    status["last_reload"]["message"] = "<b>bold</b>"
    html = render_status_html(status)
    assert "<script" not in html and "<img" not in html and "<b>bold" not in html
    page = Page(html)
    assert HOSTILE in page.rows("model")
    assert HOSTILE in page.all_text
    assert '"><img src=x onerror=alert(1)>' in page.all_text


@pytest.mark.parametrize("note", [
    {"last_error": "<img src=x onerror=alert(1)>"},  # what the probe met
    {"missing_models": ["<img src=x onerror=alert(1)>"]},  # the registry's, unlisted
])
def test_an_upstream_s_note_is_shown_as_text(note: dict[str, Any]):
    status = sample_status()
    status["upstreams"][0] |= note
    html = render_status_html(status)
    assert "<img" not in html
    assert "<img src=x onerror=alert(1)>" in Page(html).all_text


def test_every_model_and_group_appears():
    page = render()
    assert set(page.rows("model")) == {"llm02-phi3", "llm01-llama3.2-3b", "emb-premium"}
    assert set(page.rows("group")) == {"hx-chat", "hx-coding", "hx-embed"}
    assert "ml-based-routing" in page.all_text
    assert "llm02-phi3 \u2192 llm01-llama3.2-3b" in page.all_text


def test_an_open_circuit_is_marked():
    rows = render().rows("model")
    assert rows["llm01-llama3.2-3b"]["data-circuit"] == "open"
    assert rows["llm01-llama3.2-3b"]["class"] == "bad"
    assert rows["llm02-phi3"]["class"] == "ok"
    assert rows["emb-premium"]["class"] == "warn"


def test_a_circuit_badge_says_its_state_in_words_not_only_in_colour():
    html = render_status_html(sample_status())
    assert '<span class="badge bad">open</span>' in html
    assert '<span class="badge warn">half-open</span>' in html


def test_the_model_health_figures_are_shown():
    text = render().all_text
    for figure in ("182.4", "1,420.0", "0.4", "62.0", "12,011"):
        assert figure in text


def test_a_missing_measurement_shows_as_a_dash_not_none():
    page = render()
    assert "None" not in page.all_text and "null" not in page.all_text
    assert "\u2014" in page.all_text
    assert "never" in page.all_text


def test_the_header_shows_version_uptime_generation_reload_and_request_rate():
    text = render().all_text
    for shown in ("version 0.1.0", "1d 2h 3m", "Config generation", "ok, generation 3",
                  "12.75", "18,231", "0.0.0.0:4010", "1/2"):
        assert shown in text, shown


def test_a_rejected_reload_is_marked():
    reload = {"result": "rejected", "message": "routing.yaml: routing.stratgy: unknown key",
              "at": "2026-11-23T08:00:00Z"}
    html = render_status_html(sample_status(last_reload=reload))
    assert '<span class="badge bad">rejected</span>' in html
    assert "routing.stratgy: unknown key" in html


def test_draining_is_shown():
    assert '<span class="badge warn">draining</span>' in render_status_html(
        sample_status(draining=True))
    assert '<span class="badge ok">serving</span>' in render_status_html(sample_status())


def test_unreachable_upstreams_are_marked():
    status = sample_status()
    status["upstreams"][0]["reachable"] = False
    html = render_status_html(status)
    assert '<span class="badge bad">down</span>' in html
    assert '<span class="badge muted">unknown</span>' in html


def test_the_page_refreshes_itself_every_5_seconds():
    refresh = [attrs for tag, attrs in render().tags
               if tag == "meta" and attrs.get("http-equiv") == "refresh"]
    assert refresh == [{"http-equiv": "refresh", "content": "5"}]


def test_the_page_is_self_contained_without_scripts_or_external_assets():
    page = render()
    assert {tag for tag, _ in page.tags}.isdisjoint({"script", "link", "img", "iframe"})
    assert not any(name in ("src", "href") or name.startswith("on")
                   for _, attrs in page.tags for name in attrs)
    html = render_status_html(sample_status())
    assert not re.search(r"url\(|@import", html)
    assert "default-src 'none'" in html


def test_an_empty_status_still_renders():
    html = render_status_html({})
    assert "no models" in html and "no groups" in html


def test_the_sample_status_is_what_status_json_documents():
    """Keeps these tests on the shape the gateway really serves."""
    doc = load_document()
    uri = "urn:hxgw:openapi"
    registry: Registry[Any] = Registry().with_resource(uri, DRAFT202012.create_resource(doc))
    validator = Draft202012Validator({"$ref": f"{uri}#/components/schemas/Status"},
                                     registry=registry)
    assert list(validator.iter_errors(sample_status())) == []
    broken = copy.deepcopy(sample_status())
    broken["models"][0]["circuit"] = "ajar"
    assert not validator.is_valid(broken)


def test_a_failed_reload_is_marked_as_a_rejected_one_is():
    reload = {"result": "failed", "message": "OSError: [Errno 24] Too many open files",
              "at": "2026-11-23T07:44:54Z"}
    html = render_status_html(sample_status(last_reload=reload))
    assert '<span class="badge bad">failed</span>' in html
