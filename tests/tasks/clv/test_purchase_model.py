"""The BG/NBD purchase model inside a run: features, measures, the CLV KPI and the report list."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from tasks.config import Config, parse_config
from tasks.features.build import build_features
from tasks.kpis import compute_kpis
from tasks.report.sections import p_alive_drops
from tasks.score import score_accounts
from tests.tasks.clv.test_features import _orders

AS_OF = date(2025, 12, 31)


def purchase_data() -> tuple[dict[str, pl.DataFrame], Config]:
    """Accounts and orders that support a BG/NBD fit, and a config that asks for it."""
    orders = _orders()
    ids = orders["account_id"].unique().sort()
    accounts = pl.DataFrame(
        {"account_id": ids, "name": ids, "arr": [None] * ids.len()},
        schema_overrides={"arr": pl.Float64},
    )
    cfg = parse_config(
        {"sources": {"accounts": {"uri": "a.csv"}}, "kpis": {"clv_method": "bgnbd"}}, Path()
    )
    data = {
        "accounts": accounts.with_columns(
            pl.lit(None, pl.Date).alias(c) for c in ("contract_start", "renewal_date", "churned_at")
        ).with_columns(pl.lit("active").alias("status"), pl.lit(None, pl.Int64).alias("seats")),
        "orders": orders.with_columns(pl.lit("order").alias("kind")),
    }
    return data, cfg


def test_purchase_model_feeds_measures_kpis_and_report() -> None:
    data, cfg = purchase_data()
    # the purchase model adds its two measures to the financial dimension
    assert {"p_alive", "expected_purchases_90d"} <= {
        m.name for m in cfg.scoring.measures if m.dimension == "financial"
    }
    f = build_features(data, cfg, AS_OF)
    assert f["p_alive"].null_count() == 0
    assert f["p_alive_change_4w"].drop_nulls().len() > 0
    scored = score_accounts(f, cfg)
    assert scored["m_p_alive"].is_between(0, 100).all()
    k = compute_kpis(data, scored, cfg, AS_OF)
    assert k["clv"] is not None
    assert k["clv"] > 0
    assert k["clv_method"].startswith("bgnbd")
    drops = p_alive_drops(scored, 5)
    assert drops is not None
    assert len(drops) == 5
    assert all(d["change"].startswith("-") for d in drops)


def test_without_the_purchase_model_there_is_no_list() -> None:
    assert p_alive_drops(pl.DataFrame({"account_id": ["a"]}), 5) is None
