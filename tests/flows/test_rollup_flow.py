"""Hierarchy end to end: the weekly flow writes scores_rollup.*; a cycle stops `chs run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tests.conftest import DEMO_END

ROOT = Path(__file__).resolve().parents[2]


def link(demo: Path, parents: dict[str, str]) -> list[str]:
    """Give the demo's accounts parent links (child index -> parent index of the sorted ids)."""
    con = duckdb.connect(str(demo / "crm.duckdb"))
    ids = [r[0] for r in con.execute("select account_id from accounts order by 1").fetchall()]
    for child, parent in parents.items():
        con.execute(
            "update accounts set parent_account_id = ? where account_id = ?",
            [ids[int(parent)], ids[int(child)]],
        )
    con.close()
    return ids


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_weekly_flow_rolls_three_levels_up_to_the_top(demo: Path) -> None:
    # 0 <- 1 <- {2, 3}; 0 <- 4
    ids = link(demo, {"1": "0", "2": "1", "3": "1", "4": "0"})
    r = weekly_flow(WeeklyParams(config_path=str(demo / "chs.toml"), as_of=DEMO_END))
    rollup = pl.read_parquet(r.out / "scores_rollup.parquet")
    assert pl.read_csv(r.out / "scores_rollup.csv").height == rollup.height
    assert rollup.columns[:7] == [
        "account_id",
        "as_of",
        "children_n",
        "score",
        "segment",
        "share_at_risk",
        "children_arr",
    ]
    scores = pl.read_parquet(r.out / "scores.parquet")
    # the top's roll-up by hand from the published children's scores and ARR
    kids = scores.filter(pl.col("account_id").is_in([ids[i] for i in (1, 2, 3, 4)]))
    top = rollup.filter(pl.col("account_id") == ids[0]).row(0, named=True)
    assert top["children_n"] == kids.height
    assert top["children_arr"] == pytest.approx(kids["arr"].sum())
    w = kids.filter(pl.col("score").is_not_null())
    assert top["score"] == pytest.approx((w["arr"] * w["score"]).sum() / w["arr"].sum())
    assert set(rollup["account_id"]) == {ids[0], ids[1]}
    assert "Parent accounts and their worst children" in (r.out / "report.html").read_text()


@pytest.mark.slow
def test_a_cycle_of_parents_is_one_sentence_and_exit_2(demo: Path) -> None:
    ids = link(demo, {"5": "6", "6": "7", "7": "5"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--config", str(demo / "chs.toml"), "--no-send"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert p.returncode == 2, p.stderr[-2000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("chs: error:")]
    assert errors == [
        f"chs: error: accounts.parent_account_id forms a cycle: {ids[5]} -> {ids[6]} -> "
        f"{ids[7]} -> {ids[5]}; an account cannot be its own ancestor."
    ]
    assert "Traceback" not in p.stderr
    assert not (demo / "out").exists() or not list((demo / "out").glob("20*"))
