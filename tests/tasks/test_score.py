"""Normalisation, weighting with missing data, coverage, segments, drivers and trends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.config import MeasureConfig, parse_config
from tasks.errors import ConfigError
from tasks.score import add_trends, normalise, score_accounts


def _cfg(
    measures: list[dict[str, Any]], dims: dict[str, float] | None = None, **scoring: Any
) -> Any:
    body: dict[str, Any] = {"measures": measures, **scoring}
    if dims is not None:
        body["dimensions"] = dims
    return parse_config(
        {"sources": {"accounts": {"uri": "a.csv"}}, "scoring": body, "actions": []}, Path()
    )


def _norm(values: list[float | None], **m: Any) -> list[float | None]:
    mc = MeasureConfig(name="x", dimension="usage", **m)
    return (
        pl.DataFrame({"x": values}, schema={"x": pl.Float64})
        .select(normalise(mc).alias("x"))["x"]
        .to_list()
    )


def test_bands_higher_is_better() -> None:
    # breaks 0, 10, 20, 40 -> points 0, 40, 70, 100, linear inside, clipped outside
    assert _norm([-5, 0, 5, 10, 15, 30, 40, 99, None], bands=[0, 10, 20, 40]) == [
        0,
        0,
        20,
        40,
        55,
        85,
        100,
        100,
        None,
    ]


def test_bands_lower_is_better() -> None:
    # for lower-is-better the same breaks map onto 100, 70, 40, 0
    assert _norm([0, 5, 10, 30, 50], bands=[0, 10, 20, 40], direction="lower") == [
        100,
        85,
        70,
        20,
        0,
    ]


def test_minmax_and_target() -> None:
    assert _norm([0, 5, 20], method="minmax", min=0, max=10) == [0, 50, 100]
    assert _norm([0, 5, 20], method="minmax", min=0, max=10, direction="lower") == [100, 50, 0]
    assert _norm([50, 100, 150, None], method="target", target=100) == [50, 100, 100, None]


def test_percentile_within_peer_group() -> None:
    df = pl.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, None], "tier": ["s", "s", "s", "e", "s"]})
    mc = MeasureConfig(name="x", dimension="usage", method="percentile", peer_group="tier")
    # within tier s: ranks 1, 2, 3 of 3 -> 0, 50, 100; tier e has one account -> 50
    assert df.select(normalise(mc).alias("x"))["x"].to_list() == [0, 50, 100, 50, None]


def test_categorical_points() -> None:
    mc = MeasureConfig(
        name="plan", dimension="financial", points={"scale": 100, "growth": 60, "starter": 30}
    )
    df = pl.DataFrame({"plan": ["growth", "unknown", None]})
    assert df.select(normalise(mc).alias("plan"))["plan"].to_list() == [60, None, None]


def test_bands_must_ascend() -> None:
    with pytest.raises(ConfigError, match="bands"):
        _cfg([{"name": "a", "dimension": "usage", "bands": [0, 5, 5, 10]}])


MEASURES = [
    {"name": "u1", "dimension": "usage", "method": "minmax", "min": 0, "max": 100, "weight": 3},
    {"name": "u2", "dimension": "usage", "method": "minmax", "min": 0, "max": 100, "weight": 1},
    {"name": "s1", "dimension": "satisfaction", "method": "minmax", "min": 0, "max": 100},
]
DIMS = {"usage": 0.6, "satisfaction": 0.4}


def _features(rows: list[tuple[str, float | None, float | None, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"account_id": pl.String, "u1": pl.Float64, "u2": pl.Float64, "s1": pl.Float64},
        orient="row",
    )


def test_weighting_and_reweighting_over_missing_data() -> None:
    cfg = _cfg(MEASURES, DIMS, min_coverage=0.5)
    f = _features(
        [
            ("full", 80, 40, 50),
            ("no_s", 80, 40, None),
            ("no_u2", 80, None, 50),
            ("little", None, 40, None),
        ]
    )
    s = (
        score_accounts(f, cfg)
        .select("account_id", "usage", "satisfaction", "score", "coverage", "segment")
        .rows()
    )
    # full: usage = (3*80 + 40) / 4 = 70; score = 0.6*70 + 0.4*50 = 62; coverage 1
    assert s[0] == ("full", 70.0, 50.0, pytest.approx(62.0), pytest.approx(1.0), "neutral")
    # no satisfaction: the score re-weights onto usage alone; coverage 0.6
    assert s[1] == ("no_s", 70.0, None, pytest.approx(70.0), pytest.approx(0.6), "healthy")
    # u2 missing: usage = 80; score = 0.6*80 + 0.4*50 = 68; coverage = 1 - 0.6 * 1/4 = 0.85
    assert s[2] == ("no_u2", 80.0, 50.0, pytest.approx(68.0), pytest.approx(0.85), "neutral")
    # only u2: coverage 0.15 < 0.5 -> flagged, not scored
    assert s[3] == ("little", 40.0, None, None, pytest.approx(0.15), None)


def test_drivers_and_contributions_add_up() -> None:
    cfg = _cfg(MEASURES, DIMS, min_coverage=0.5)
    s = score_accounts(_features([("a", 80, 40, 50)]), cfg).row(0, named=True)
    # effective weights 0.45, 0.15, 0.4; lost = 0.45*20=9, 0.15*60=9, 0.4*50=20
    assert s["lost_s1"] == pytest.approx(20.0)
    assert s["lost_u1"] + s["lost_u2"] + s["lost_s1"] == pytest.approx(100 - s["score"])
    assert s["c_u1"] + s["c_u2"] + s["c_s1"] == pytest.approx(s["score"])
    assert s["top_drivers"] == "s1 (-20.0); u1 (-9.0); u2 (-9.0)"


def test_trend_delta_drop_alert_and_change_drivers() -> None:
    cfg = _cfg(MEASURES, DIMS, min_coverage=0.5, drop_alert=5)
    prev = score_accounts(_features([("a", 80, 40, 50), ("b", 50, 50, 50)]), cfg).with_columns(
        pl.lit(None).alias("x")
    )
    now = score_accounts(_features([("a", 80, 40, 20), ("b", 52, 50, 50)]), cfg)
    t = (
        add_trends(now, prev, None, cfg)
        .sort("account_id")
        .rows_by_key("account_id", named=True, unique=True)
    )
    # a: satisfaction 50 -> 20 costs 0.4 * 30 = 12 points
    assert t["a"]["score_delta_1w"] == pytest.approx(-12.0)
    assert t["a"]["drop_alert"] is True
    assert t["a"]["change_drivers"] == "s1 (-12.0)"
    assert t["b"]["drop_alert"] is False
    assert t["a"]["score_delta_4w"] is None


def test_unknown_feature_is_a_config_error() -> None:
    cfg = _cfg(
        [
            {
                "name": "typo",
                "dimension": "usage",
                "feature": "licence_utilisation",
                "bands": [0, 1, 2, 3],
            }
        ]
    )
    with pytest.raises(ConfigError, match="licence_utilisation"):
        score_accounts(pl.DataFrame({"account_id": ["a"]}), cfg)


values = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(values, values, values), min_size=1, max_size=20))
def test_scores_stay_in_range_and_contributions_sum(rows: list[tuple[float | None, ...]]) -> None:
    cfg = _cfg(MEASURES, DIMS, min_coverage=0.0)
    f = _features([(f"a{i}", *r) for i, r in enumerate(rows)])
    s = score_accounts(f, cfg)
    for col in ("score", "usage", "satisfaction"):
        v = s[col].drop_nulls()
        assert v.is_empty() or (v.min() >= 0 and v.max() <= 100)  # type: ignore[operator]
    assert s["coverage"].is_between(0, 1).all()
    total = s.select(
        pl.sum_horizontal("c_u1", "c_u2", "c_s1") - pl.col("score").fill_null(0)
    ).to_series()
    assert total.abs().max() < 1e-9  # type: ignore[operator]
    # shuffling the input rows never changes any account's result
    shuffled = score_accounts(f.reverse(), cfg).sort("account_id")
    assert shuffled.drop("top_drivers").equals(s.sort("account_id").drop("top_drivers"))


def test_per_tier_model_overrides_weights_and_bands() -> None:
    cfg = _cfg(
        MEASURES,
        DIMS,
        min_coverage=0.5,
        tiers={
            "enterprise": {
                "dimensions": {"usage": 1.0},
                "measures": [{"name": "u1", "min": 0, "max": 50}],
            }
        },
    )
    f = _features([("a", 40, 40, 50), ("b", 40, 40, 50)]).with_columns(
        pl.Series("tier", ["smb", "enterprise"])
    )
    s = score_accounts(f, cfg).rows_by_key("account_id", named=True, unique=True)
    # smb uses the main model: usage (3*40 + 40) / 4 = 40; 0.6*40 + 0.4*50 = 44
    assert s["a"]["score"] == pytest.approx(44.0)
    assert s["a"]["model"] == "default"
    # enterprise: u1 on 0-50 -> 80; usage (3*80 + 40) / 4 = 70; usage is its only dimension
    assert s["b"]["score"] == pytest.approx(70.0)
    assert s["b"]["model"] == "tier:enterprise"


def test_tier_changing_unknown_measure_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown measure 'nope'"):
        _cfg(MEASURES, DIMS, tiers={"smb": {"measures": [{"name": "nope", "weight": 2}]}})
