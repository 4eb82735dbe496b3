"""Back-testing against churn: labels, metrics, time splits, learned weights, no leakage."""

from __future__ import annotations

import json
import tomllib
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.backfill import backfill_flow
from flows.backtest import backtest_flow, read_accounts
from flows.params import BackfillParams
from tasks.backtest import (
    auc,
    backtest,
    labelled,
    learned_config,
    lift_top_decile,
    rescore,
    time_split,
)
from tasks.clock import utc_now
from tasks.config import Config, load_config, parse_config
from tasks.history.connect import open_history
from tasks.score import segment_of
from tests.conftest import DEMO_END

FIRST = date(2025, 1, 6)
KNOWN = date(2026, 1, 5)
CFG = parse_config(
    {
        "sources": {"accounts": {"uri": "a.csv"}},
        "scoring": {
            "dimensions": {"usage": 0.5, "engagement": 0.5},
            "measures": [
                {"name": "signal", "dimension": "usage", "bands": [0, 30, 60, 90]},
                {"name": "noise", "dimension": "engagement", "bands": [0, 30, 60, 90]},
            ],
        },
    },
    Path(),
)


def synthetic(
    n: int = 600, weeks: int = 48, seed: int = 1
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Scores, measure points and accounts where the ``signal`` measure predicts churn."""
    rng = np.random.default_rng(seed)
    ids = [f"a{i:04d}" for i in range(n)]
    health = rng.normal(size=n)
    churns = rng.random(n) < 1 / (1 + np.exp(2.0 + 2.5 * health))
    churn_day = rng.integers(30, 7 * weeks + 60, size=n)
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "churned_at": [
                FIRST + timedelta(days=int(d)) if c else None
                for d, c in zip(churn_day, churns, strict=True)
            ],
        },
        schema={"account_id": pl.String, "churned_at": pl.Date},
    )
    rows = []
    for k in range(weeks):
        as_of = FIRST + timedelta(weeks=k)
        signal = np.clip(55 + 25 * health + rng.normal(0, 5, n), 0, 100)
        noise = rng.uniform(0, 100, n)
        rows.append(
            pl.DataFrame(
                {"as_of": [as_of] * n, "account_id": ids, "signal": signal, "noise": noise}
            )
        )
    points = (
        pl.concat(rows)
        .join(accounts, on="account_id")
        .filter(pl.col("churned_at").is_null() | (pl.col("churned_at") > pl.col("as_of")))
    )
    measures = points.unpivot(
        index=["as_of", "account_id"],
        on=["signal", "noise"],
        variable_name="measure",
        value_name="points",
    )
    wide = points.select(
        "as_of", "account_id", pl.col("signal").alias("m_signal"), pl.col("noise").alias("m_noise")
    )
    scores = rescore(wide, CFG).with_columns(segment_of(pl.col("score"), CFG).alias("segment"))
    return scores, measures, accounts


def test_labels_look_exactly_one_horizon_ahead() -> None:
    d = date(2026, 1, 1)
    scores = pl.DataFrame(
        {
            "as_of": [d] * 4 + [date(2026, 2, 1)],
            "account_id": ["a", "b", "c", "d", "a"],
            "score": [10.0, 20.0, 30.0, 40.0, 10.0],
            "segment": ["at_risk"] * 5,
        }
    )
    accounts = pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "churned_at": [d + timedelta(days=90), d + timedelta(days=91), d, None],
        }
    )
    rows = labelled(scores, accounts, 90, known_until=date(2026, 4, 15))
    # day 90 is inside the horizon, day 91 is not; c churned on the snapshot day (not a
    # customer any more); the 1 February snapshot's horizon is not over on 15 April yet
    assert rows.select("account_id", "churned").rows() == [("a", True), ("b", False), ("d", False)]


def test_auc_and_lift_on_a_hand_made_ranking() -> None:
    d = date(2026, 1, 1)
    rows = pl.DataFrame(
        {
            "as_of": [d] * 10,
            "account_id": [f"a{i}" for i in range(10)],
            "score": [float(i) for i in range(10)],
            "churned": [True, True] + [False] * 8,
        }
    )
    assert auc(rows["churned"], rows["score"]) == 1.0  # the two lowest scores churned
    # the riskiest tenth is one account, which churned: 100% vs 20% overall -> lift 5
    assert lift_top_decile(rows) == pytest.approx(5.0)
    assert auc(rows["churned"].not_(), rows["score"]) == 0.0


def test_time_split_leaves_a_horizon_between_training_labels_and_the_test() -> None:
    dates = [FIRST + timedelta(weeks=k) for k in range(40)]
    train, test = time_split(dates, 90)
    assert test == dates[-13:]
    assert train
    assert max(train) + timedelta(days=90) < min(test)


def test_the_score_predicts_synthetic_churn_and_learning_finds_the_signal() -> None:
    scores, measures, accounts = synthetic()
    report = backtest(scores, measures, accounts, CFG, KNOWN)
    assert report["auc"] > 0.65  # half the hand-set weight sits on a noise measure
    assert report["lift_top_decile"] > 2
    seg = report["churn_rate_by_segment"]
    assert (
        seg["at_risk"]["churn_rate"] > seg["neutral"]["churn_rate"] > seg["healthy"]["churn_rate"]
    )
    learned = report["learned"]
    assert learned["weights"]["signal"] > 0.8  # the noise measure earns (almost) nothing
    assert learned["auc"] > report["hand_set_test"]["auc"] + 0.1
    assert report["n_snapshots"] == len(
        {d for d in scores["as_of"] if d + timedelta(days=90) <= KNOWN}
    )
    json.dumps(report)  # the report is plain JSON


def test_shuffled_churn_dates_give_an_auc_of_one_half() -> None:
    scores, measures, accounts = synthetic()
    shuffled = accounts.with_columns(pl.col("churned_at").shuffle(seed=5))
    report = backtest(scores, measures, shuffled, CFG, KNOWN)
    assert report["auc"] == pytest.approx(0.5, abs=0.05)
    assert report["learned"]["auc"] is None or report["learned"]["auc"] == pytest.approx(
        0.5, abs=0.08
    )


def test_learned_weights_print_as_a_config_that_loads_and_scores_the_same() -> None:
    scores, measures, accounts = synthetic()
    report = backtest(scores, measures, accounts, CFG, KNOWN)
    text = report["learned"]["config_toml"]
    doc = tomllib.loads(text)
    adopted = parse_config({"sources": {"accounts": {"uri": "a.csv"}}, **doc}, Path())
    weights = {m.name: m.weight for m in adopted.scoring.measures}
    assert weights == pytest.approx(
        {n: round(w, 3) for n, w in report["learned"]["weights"].items() if round(w, 3) > 0}
    )
    assert adopted.scoring.measures[0].bands == [0, 30, 60, 90]


def test_rescoring_stored_points_with_the_same_config_gives_the_stored_score() -> None:
    scores, measures, _ = synthetic(n=50, weeks=3)
    wide = measures.pivot(on="measure", index=["as_of", "account_id"], values="points").rename(
        {"signal": "m_signal", "noise": "m_noise"}
    )
    again = rescore(wide, CFG).join(scores, on=["as_of", "account_id"], suffix="_stored")
    assert_frame_equal(again.select("score"), again.select(pl.col("score_stored").alias("score")))


def test_learned_config_drops_measures_that_do_not_lower_churn() -> None:
    class Fit:
        weights = {"signal": 1.0, "noise": 0.0}

    new = learned_config(CFG, Fit())  # type: ignore[arg-type]
    assert [m.name for m in new.scoring.measures] == ["signal"]
    assert new.scoring.dimensions["engagement"] == 0


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_backtest_of_a_backfilled_demo(demo: Path) -> None:
    config = str(demo / "chs.toml")
    backfill_flow(
        BackfillParams(config_path=config, start=DEMO_END - timedelta(weeks=40), end=DEMO_END)
    )
    report = backtest_flow(config_path=config, as_of=DEMO_END)
    written = json.loads((demo / "out" / "backtest.json").read_text())
    assert written == json.loads(json.dumps(report))
    for key in ("auc", "lift_top_decile", "churn_rate_by_segment", "n_snapshots", "horizon_days"):
        assert key in written
    assert written["horizon_days"] == 90
    assert written["n_snapshots"] == 41 - 13  # the last 13 weeks' horizons are not over yet
    assert written["auc"] > 0.65
    assert {"auc", "lift_top_decile", "weights"} <= set(written["learned"])
    # with churn dates dealt out at random the same history predicts nothing
    cfg: Config = load_config(Path(config))
    store = open_history(cfg)
    scores, measures = (
        store.scores_between(date.min, DEMO_END),
        store.measures_between(date.min, DEMO_END),
    )
    store.close()
    accounts = read_accounts.fn(cfg, DEMO_END, utc_now())
    shuffled = accounts.with_columns(pl.col("churned_at").shuffle(seed=3))
    assert backtest(scores, measures, shuffled, cfg, DEMO_END)["auc"] == pytest.approx(0.5, abs=0.1)
