"""The effectiveness estimator: Newcombe's interval, and a planted effect recovered."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tasks.config import parse_config
from tasks.effectiveness import effectiveness, newcombe, wilson

CFG = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())
AS_OF = date(2025, 12, 1)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Table II example (56/70 vs 48/80): 0.2000, 95% CI 0.0524 to 0.3339
    d = newcombe(56, 70, 48, 80)
    assert (d["estimate"], d["low"], d["high"]) == (0.2, 0.0524, 0.3339)
    lo, hi = wilson(0, 10)  # never a negative share
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.2775, abs=1e-4)


def _history(
    p_treated: float, p_holdout: float, n: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Openings of one playbook 120 days ago and the score 4 weeks later: recovered or not."""
    rng = np.random.default_rng(seed)
    held = rng.random(n) < 0.3
    recovered = rng.random(n) < np.where(held, p_holdout, p_treated)
    ids = [f"A{i:05d}" for i in range(n)]
    opened = AS_OF - timedelta(days=120)
    openings = pl.DataFrame(
        {
            "account_id": ids,
            "action": ["Health-check call with the customer"] * n,
            "action_id": ids,
            "opened_on": [opened] * n,
            "holdout": held,
            "opened_score": [30.0] * n,
            "opened_segment": ["at_risk"] * n,
        }
    )
    scores = pl.DataFrame(
        {
            "account_id": ids,
            "as_of": [opened + timedelta(days=28)] * n,
            "score": np.where(recovered, 55.0, 32.0),
        }
    )
    return openings, scores


@pytest.mark.parametrize(("p_treated", "p_holdout"), [(0.6, 0.3), (0.4, 0.4)])
def test_the_estimator_recovers_a_planted_effect_within_its_interval(
    p_treated: float, p_holdout: float
) -> None:
    openings, scores = _history(p_treated, p_holdout, 2000, seed=3)
    accounts = pl.DataFrame(
        {"account_id": openings["account_id"], "churned_at": [None] * 2000},
        schema={"account_id": pl.String, "churned_at": pl.Date},
    )
    doc = effectiveness(openings, scores, accounts, CFG, AS_OF)
    row = next(p for p in doc["playbooks"] if p["action"] == "Health-check call with the customer")
    d = row["recovered_difference"]
    assert d["low"] <= p_treated - p_holdout <= d["high"]  # the truth is inside the interval
    assert (d["low"] > 0) == (p_treated > p_holdout)  # a real effect excludes 0, a null does not
    assert row["treated_n"] + row["holdout_n"] == 2000
    assert not row["n_too_small"]
    assert "Newcombe" in doc["method"]


def test_small_groups_are_flagged_and_young_actions_wait() -> None:
    openings, scores = _history(0.6, 0.3, 40, seed=1)
    accounts = pl.DataFrame({"account_id": openings["account_id"]})
    row = effectiveness(openings, scores, accounts, CFG, AS_OF)["playbooks"][1]
    assert row["n_too_small"] is True  # about 12 held out
    young = effectiveness(openings, scores, accounts, CFG, AS_OF - timedelta(days=60))
    assert all(p["treated_n"] == 0 for p in young["playbooks"])  # outcomes not known yet
