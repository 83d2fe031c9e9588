"""The inline-SVG line charts: names escaped, the busiest series kept, colours steady."""

from __future__ import annotations

import re

from hxgw.server.charts import MAX_SERIES, PALETTE, line_chart
from tests.unit.server.test_usage_section import Charts

LABELS = ["14:00", "14:01", "14:02"]


def test_a_name_keeps_its_colour_whatever_its_size_in_this_chart():
    small_first = line_chart("a", LABELS, {"alpha": [1, 1, 1], "beta": [9, 9, 9]})
    big_first = line_chart("b", LABELS, {"alpha": [9, 9, 9], "beta": [1, 1, 1]})
    for html in (small_first, big_first):
        assert html.index(f"background:{PALETTE[0]}\"></i>alpha") > 0
        assert html.index(f"background:{PALETTE[1]}\"></i>beta") > 0


def test_past_the_palette_the_busiest_series_are_kept():
    series = {f"s{n}": [float(n)] * 3 for n in range(MAX_SERIES + 2)}
    chart = Charts(line_chart("many", LABELS, series)).charts["many"]
    assert chart["legend"] == [f"s{n}" for n in range(2, MAX_SERIES + 2)]
    assert chart["lines"] == MAX_SERIES


def test_a_bucket_without_a_figure_is_left_out_of_the_line():
    html = line_chart("gaps", LABELS, {"p99": [None, 2.0, None]}, unit=lambda v: f"{v:g} s")
    [points] = re.findall(r'points="([^"]*)"', html)
    assert len(points.split()) == 1
    assert ">2 s<" in html


def test_names_and_titles_are_escaped():
    html = line_chart("<b>t</b>", LABELS, {"<script>": [1, 2, 3]})
    assert "<script>" not in html and "<b>" not in html
    assert Charts(html).charts["<b>t</b>"]["legend"] == ["<script>"]
