"""Manual overrides: applied with a reason until they expire, computed score kept beside them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tasks.config import parse_config
from tasks.errors import ConfigError
from tasks.overrides import apply_overrides, load_overrides
from tasks.score import add_trends

SCORED = pl.DataFrame(
    {
        "account_id": ["a", "b", "c"],
        "score": [30.0, 80.0, 55.0],
        "segment": ["at_risk", "healthy", "neutral"],
    }
)


def _cfg(tmp: Path, text: str) -> object:
    (tmp / "overrides.csv").write_text(text)
    return parse_config(
        {
            "sources": {"accounts": {"uri": "a.csv"}},
            "scoring": {"overrides": {"uri": "overrides.csv"}},
        },
        tmp,
    )


def test_overrides_apply_until_they_expire(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        "account_id,score,segment,reason,expires,author\n"
        "a,,neutral,Exec sponsor confirmed renewal,2026-04-30,maria\n"
        "b,35,,Champion left the company,2026-03-01,tom\n",
    )
    o = load_overrides(cfg, date(2026, 3, 31))  # type: ignore[arg-type]
    out = apply_overrides(SCORED, o, cfg).rows_by_key("account_id", named=True, unique=True)  # type: ignore[arg-type]
    # a: segment override only; the computed score and segment stay visible beside it
    assert (out["a"]["score"], out["a"]["segment"], out["a"]["computed_segment"]) == (
        30.0,
        "neutral",
        "at_risk",
    )
    assert out["a"]["override_reason"] == "Exec sponsor confirmed renewal"
    # b's override expired on 2026-03-01: dropped, the computed result stands
    assert (out["b"]["score"], out["b"]["segment"], out["b"]["override_reason"]) == (
        80.0,
        "healthy",
        None,
    )
    o_early = load_overrides(cfg, date(2026, 2, 1))  # type: ignore[arg-type]
    early = apply_overrides(SCORED, o_early, cfg).rows_by_key("account_id", named=True, unique=True)  # type: ignore[arg-type]
    # while in force, a score override also moves the segment (35 < 40 -> at_risk)
    assert (early["b"]["score"], early["b"]["segment"], early["b"]["computed_score"]) == (
        35.0,
        "at_risk",
        80.0,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("account_id,score,reason,expires\na,120,x,2026-01-01\n", "line 2"),
        ("account_id,segment,reason,expires\na,great,x,2026-01-01\n", "line 2"),
        ("account_id,score,reason\na,10,x\n", "no column 'expires'"),
        (
            "account_id,score,reason,expires\na,10,x,2026-01-01\na,20,y,2026-01-01\n",
            "more than one override",
        ),
    ],
)
def test_bad_override_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_overrides(_cfg(tmp_path, text), date(2026, 1, 1))  # type: ignore[arg-type]


def test_deltas_compare_computed_scores(tmp_path: Path) -> None:
    cfg = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, tmp_path)
    # last week b was overridden to 35 but computed 80; now it computes 78 -> a change of -2
    prev = pl.DataFrame(
        {"account_id": ["b"], "score": [35.0], "computed_score": [80.0], "segment": ["at_risk"]}
    )
    now = pl.DataFrame({"account_id": ["b"], "score": [78.0]})
    out = add_trends(now, prev, None, cfg)
    assert out["score_delta_1w"].to_list() == [pytest.approx(-2.0)]
