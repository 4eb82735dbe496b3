"""Invariants on real (demo) data: point in time, order independence, ranges."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tasks.config import Config, load_config
from tasks.features.build import build_features
from tasks.schemas import DATASETS
from tasks.score import score_accounts
from tasks.sources.plan import REASON, ROW, Window
from tasks.sources.read import extract_dataset
from tests.conftest import DEMO_END


@pytest.fixture(scope="module")
def demo_data(demo_template: Path) -> tuple[Config, dict[str, pl.DataFrame]]:
    """Read every demo dataset as of the demo's last day (no validation needed for these checks)."""
    cfg = load_config(demo_template / "chs.toml")
    window = Window(DEMO_END, datetime(2030, 1, 1))
    data = {
        n: extract_dataset(n, cfg, window).drop(ROW, REASON) for n in DATASETS if n in cfg.sources
    }
    return cfg, data


def _scores(cfg: Config, data: dict[str, pl.DataFrame], as_of: date) -> pl.DataFrame:
    return score_accounts(build_features(data, cfg, as_of), cfg)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(days_back=st.integers(min_value=1, max_value=120))
def test_rows_after_the_as_of_date_never_change_a_score(
    demo_data: tuple[Config, dict[str, pl.DataFrame]], days_back: int
) -> None:
    cfg, data = demo_data
    as_of = DEMO_END - timedelta(days=days_back)
    end = datetime.combine(as_of, datetime.max.time())
    cut = {
        n: df.filter(pl.col(DATASETS[n].time_column) <= end) if DATASETS[n].time_column else df
        for n, df in data.items()
    }
    assert_frame_equal(_scores(cfg, data, as_of), _scores(cfg, cut, as_of))


def test_shuffled_input_gives_the_same_scores(
    demo_data: tuple[Config, dict[str, pl.DataFrame]],
) -> None:
    cfg, data = demo_data
    shuffled = {n: df.sample(fraction=1.0, shuffle=True, seed=3) for n, df in data.items()}
    assert_frame_equal(_scores(cfg, data, DEMO_END), _scores(cfg, shuffled, DEMO_END))


def test_demo_scores_are_in_range_with_every_segment(
    demo_data: tuple[Config, dict[str, pl.DataFrame]],
) -> None:
    cfg, data = demo_data
    s = _scores(cfg, data, DEMO_END)
    for col in ("score", "usage", "engagement", "financial", "support", "outcomes", "satisfaction"):
        v = s[col].drop_nulls()
        assert v.is_between(0, 100).all(), col
    assert s["coverage"].is_between(0, 1).all()
    assert set(s["segment"].drop_nulls()) == {"healthy", "neutral", "at_risk"}
    full = s.filter(pl.col("coverage") > 0.999999)
    assert full.height > 0  # accounts with every measure have coverage 1.0
