"""The chart module's exports (what it renders, on which queue, the histograms it fills) and
the run's background start of the chart engine's and the templates' work.

A run draws the report's three charts as SVG and one histogram per CSM digest as PNG; the
stakeholder e-mail shows the report's charts. These tests count vl-convert's renders (a real
count kept by ``tasks.report.charts``) and compare bytes and specs; nothing here is timed.
"""

from __future__ import annotations

import random
import threading

import polars as pl
import pytest
import vl_convert

from tasks.config import Config
from tasks.report import charts, templates


def _cfg(at_risk: float = 40.0, healthy: float = 70.0) -> Config:
    return Config.model_validate(
        {
            "sources": {"accounts": {"uri": "accounts.csv"}},
            "scoring": {"segments": {"at_risk": at_risk, "healthy": healthy}},
        }
    )


def _scores(n: int, seed: int = 7) -> pl.Series:
    rng = random.Random(seed)
    return pl.Series([min(100.0, max(0.0, rng.gauss(58, 20))) for _ in range(n)], dtype=pl.Float64)


# (5, 70): no 10-point bin's middle is below 5, so the at-risk colour is not in the legend
@pytest.mark.parametrize(("at_risk", "healthy"), [(40, 70), (30, 80), (5, 70), (40, 95)])
@pytest.mark.parametrize("n", [0, 1, 130, 4000])
def test_a_histogram_is_the_spec_altair_builds_from_its_bins(
    at_risk: float, healthy: float, n: int
) -> None:
    cfg = _cfg(at_risk, healthy)
    scores = _scores(n)
    drawn = charts.histogram(scores, cfg, name="your-scores", whose="your")
    counts = [int(((scores // 10).clip(0, 9) == i).sum()) for i in range(10)]
    rows = charts._histogram_rows(dict(enumerate(counts)), at_risk, healthy)
    assert drawn["spec"] == charts.histogram_spec(rows, at_risk, healthy)
    assert [r["count"] for r in drawn["spec"]["datasets"]["bins"]] == counts
    assert drawn["facts"]["total"] == n
    assert drawn["alt"].startswith(f"Histogram of the health scores of {n:,} your accounts")


def test_filling_a_histogram_leaves_the_next_one_untouched() -> None:
    cfg = _cfg()
    first = charts.histogram(_scores(50, seed=1), cfg)
    second = charts.histogram(_scores(3000, seed=2), cfg)
    assert first["spec"]["datasets"] != second["spec"]["datasets"]
    assert (
        first["spec"]["layer"][1]["encoding"]["y"]["scale"]["domain"]
        != (second["spec"]["layer"][1]["encoding"]["y"]["scale"]["domain"])
    )
    assert charts.histogram(_scores(50, seed=1), cfg)["spec"] == first["spec"]


def test_a_chart_the_report_drew_is_rasterised_for_the_email_not_rendered_again() -> None:
    chart = charts.histogram(_scores(500), _cfg())
    chart["svg"] = charts.to_svg(chart)
    before = charts.vega_renders()
    png = charts.to_png(chart)
    assert charts.vega_renders() == before
    # the same image a second Vega render would give, byte for byte
    assert png == bytes(vl_convert.vegalite_to_png(chart["spec"], scale=charts.PNG_SCALE))


def test_a_chart_without_an_svg_is_rendered_once_for_its_png() -> None:
    chart = charts.histogram(_scores(80), _cfg(), name="your-scores", whose="your")
    before = charts.vega_renders()
    png = charts.to_png(chart)
    assert charts.vega_renders() == before + 1
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_svgs_are_not_queued_behind_the_digest_images() -> None:
    release = threading.Event()
    blocked = charts._lane("mail").submit(release.wait, 300)  # a digest image that never ends
    try:
        chart = charts.histogram(_scores(200), _cfg())
        svg = charts.submit_svg(chart).result(timeout=120)  # one queue: this would never come
        assert svg.startswith("<svg")
        assert 'role="img"' in svg
        assert not blocked.done()
    finally:
        release.set()
    assert blocked.result(timeout=60)


def test_the_run_templates_are_compiled_in_the_background_before_they_are_rendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    templates.preload().join(timeout=120)
    env = templates.environment()

    def no_compile(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again in the render step")

    monkeypatch.setattr(env, "compile", no_compile)
    for name in templates.RUN_TEMPLATES:
        assert env.get_template(name).name == name  # from the environment's cache
