"""The overview's rates and charts (no store, no browser)."""

from __future__ import annotations

import re

from statek.dashboard.data import segments
from statek.dashboard.sampler import Sample, Sampler, chart


def test_rates_are_per_second_and_failures_per_minute() -> None:
    feed = iter([Sample(100.0, 0, 0, 0, 0, 0), Sample(102.0, 50, 1, 3, 4, 5),
                 Sample(104.0, 50, 1, 0, 0, 0)])
    sampler = Sampler(lambda: next(feed), "steps")
    for _ in range(3):
        sampler.take()
    done, failed = sampler.rates()
    assert [round(v, 3) for _, v in done] == [25.0, 0.0]
    assert [round(v, 3) for _, v in failed] == [30.0, 0.0]
    assert sampler.latest() == Sample(104.0, 50, 1, 0, 0, 0)


def test_a_chart_is_numbers_and_escaped_labels() -> None:
    svg = chart([(10.0, 4.0), (2.0, 1.0)], "<b>t</b>", "/s")
    assert svg.startswith("<svg") and "&lt;b&gt;t&lt;/b&gt;" in svg and "<b>" not in svg
    assert "now 1.0 /s, peak 4.0" in svg
    points = re.search(r'points="([^"]*)"', svg)
    assert points is not None and len(points.group(1).split()) == 2
    assert 'points=""' in chart([], "empty", "/s")


def test_a_reply_splits_into_prose_and_code_blocks() -> None:
    parts = segments("Let me add.\n```python\nx = 1 + 1\n```\nThen exit.")
    assert [(p["kind"], p["lang"]) for p in parts] == [("text", ""), ("code", "python"),
                                                       ("text", "")]
    assert parts[1]["text"] == "x = 1 + 1\n"
    assert segments("print('bare code')") == [{"kind": "code", "text": "print('bare code')",
                                               "lang": ""}]
    assert segments("just words, not code")[0]["kind"] == "text"
