"""Parent accounts roll up from their children: a three-level hierarchy by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.config import parse_config
from tasks.errors import ConfigError
from tasks.rollup import ancestors, rollup_scores

D = date(2026, 11, 16)
# G (group) -> E (Europe) -> e1, e2; G -> u1; E has its own score too (it is a child of G)
ACCOUNTS = pl.DataFrame(
    {
        "account_id": ["G", "E", "e1", "e2", "u1", "solo"],
        "parent_account_id": [None, "G", "E", "E", "G", None],
    }
)
SCORED = pl.DataFrame(
    {
        "account_id": ["G", "E", "e1", "e2", "u1", "solo"],
        "score": [90.0, 60.0, 30.0, 80.0, 50.0, 10.0],
        "segment": ["healthy", "neutral", "at_risk", "healthy", "neutral", "at_risk"],
        "arr": [0.0, 100.0, 300.0, 100.0, 500.0, 1.0],
        # points each measure cost the child (they sum to 100 - score)
        "lost_nps_account": [10.0, 40.0, 50.0, 20.0, 10.0, 90.0],
        "lost_license_utilisation": [0.0, 0.0, 20.0, 0.0, 40.0, 0.0],
    }
)


def _cfg(method: str) -> object:
    return parse_config(
        {"sources": {"accounts": {"uri": "a.csv"}}, "rollup": {"method": method}}, Path()
    )


def test_chains_of_any_depth_roll_up_to_the_top() -> None:
    pairs = ancestors(ACCOUNTS).sort("account_id", "ancestor_id")
    expected = pl.DataFrame(
        {
            "account_id": ["E", "e1", "e1", "e2", "e2", "u1"],
            "ancestor_id": ["G", "E", "G", "E", "G", "G"],
        }
    )
    assert_frame_equal(pairs, expected)


@pytest.mark.parametrize(
    ("method", "g_score", "e_score"),
    [
        # G's children: E 60 (arr 100), e1 30 (300), e2 80 (100), u1 50 (500): Σarr 1000
        # (6000 + 9000 + 8000 + 25000) / 1000 = 48; E: (9000 + 8000) / 400 = 42.5
        ("arr_weighted", 48.0, 42.5),
        ("worst_child", 30.0, 30.0),  # e1 under both
        ("mean", 55.0, 55.0),  # (60 + 30 + 80 + 50) / 4; E: (30 + 80) / 2
    ],
)
def test_three_levels_under_each_method(method: str, g_score: float, e_score: float) -> None:
    out = rollup_scores(SCORED, ACCOUNTS, _cfg(method), D)  # type: ignore[arg-type]
    expected = pl.DataFrame(
        {
            "account_id": ["E", "G"],
            "as_of": [D, D],
            "children_n": [2, 4],
            "score": [e_score, g_score],
            # E: e1's 300 of 400; G: e1's 300 of 1000
            "share_at_risk": [0.75, 0.3],
            "children_arr": [400.0, 1000.0],
            "worst_child_id": ["e1", "e1"],
            "worst_child_score": [30.0, 30.0],
        }
    )
    cols = expected.columns
    assert_frame_equal(out.select(cols), expected)
    assert out["method"].to_list() == [method, method]


def test_drivers_roll_up_and_split_the_points_the_parent_lost() -> None:
    out = rollup_scores(SCORED, ACCOUNTS, _cfg("arr_weighted"), D)  # type: ignore[arg-type]
    # G lost 52 points: u1's licences 0.5 x 40 = 20, e1's NPS 0.3 x 50 = 15, e1's licences
    # 0.3 x 20 = 6, u1's NPS 0.5 x 10 = 5 (k = 3 shown)
    g = out.filter(pl.col("account_id") == "G")["top_drivers"][0]
    assert (
        g
        == "u1: license_utilisation (-20.0); e1: nps_account (-15.0); e1: license_utilisation (-6.0)"
    )
    assert out.filter(pl.col("account_id") == "G")["segment"][0] == "neutral"


def test_a_cycle_is_a_configuration_error_naming_the_accounts() -> None:
    looped = pl.DataFrame(
        {"account_id": ["a", "b", "c", "x"], "parent_account_id": ["b", "c", "a", "a"]}
    )
    with pytest.raises(ConfigError, match=r"cycle: a -> b -> c -> a;") as err:
        ancestors(looped)
    assert err.value.exit_code == 2


def test_no_parent_column_gives_no_rollup() -> None:
    out = rollup_scores(SCORED, ACCOUNTS.drop("parent_account_id"), _cfg("mean"), D)  # type: ignore[arg-type]
    assert out.height == 0
    assert tuple(out.columns)[:3] == ("account_id", "as_of", "children_n")
