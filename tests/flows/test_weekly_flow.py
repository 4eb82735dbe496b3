"""End to end: the weekly flow on a small demo, under one session-wide Prefect harness."""

from __future__ import annotations

import json
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tasks.schemas import DIMENSIONS
from tests.conftest import DEMO_END

KPI_KEYS = {
    "as_of",
    "accounts_active",
    "nps",
    "nps_n",
    "csat_pct",
    "csat_n",
    "ces_mean",
    "ces_n",
    "logo_churn_rate",
    "retention_rate",
    "gross_revenue_retention",
    "net_revenue_retention",
    "avg_resolution_hours",
    "median_resolution_hours",
    "repeat_purchase_rate",
    "accounts_by_segment",
    "arr_by_segment",
    "window_days",
}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_weekly_flow_writes_every_output_and_reruns_idempotently(demo: Path) -> None:
    config = str(demo / "chs.toml")
    first = DEMO_END - timedelta(days=7)
    weekly_flow(WeeklyParams(config_path=config, as_of=first))
    r = weekly_flow(WeeklyParams(config_path=config, as_of=DEMO_END))
    out = demo / "out" / DEMO_END.isoformat()
    assert r.out == out
    for name in (
        "scores.parquet",
        "scores.csv",
        "actions.csv",
        "kpis.json",
        "validation.json",
        "report.html",
    ):
        assert (out / name).is_file(), name
    scores = pl.read_parquet(out / "scores.parquet")
    required = {
        "account_id",
        "as_of",
        "score",
        "segment",
        "coverage",
        "score_delta_1w",
        "score_delta_4w",
        "top_drivers",
        *DIMENSIONS,
    }
    assert required <= set(scores.columns)
    assert scores["account_id"].is_unique().all()
    assert set(scores["segment"].drop_nulls()) == {"healthy", "neutral", "at_risk"}
    assert scores["score"].drop_nulls().is_between(0, 100).all()
    assert (
        scores["score_delta_1w"].drop_nulls().len() > 0.9 * scores.height
    )  # last week is in history
    assert pl.read_csv(out / "scores.csv").height == scores.height
    actions = pl.read_csv(out / "actions.csv")
    assert actions.columns == [
        "account_id",
        "as_of",
        "action",
        "reason",
        "owner",
        "priority",
        "due_date",
        # the lifecycle's columns follow the first seven (SPEC 10.1)
        "action_id",
        "status",
        "opened_on",
        "weeks_open",
        "overdue",
    ]
    assert actions.height > 0
    assert actions["action_id"].is_unique().all()
    assert "holdout" not in set(actions["status"])  # nobody is told who is held out
    effect = json.loads((out / "effectiveness.json").read_text())
    assert {p["action"] for p in effect["playbooks"]} >= {"Health-check call with the customer"}
    kpis = json.loads((out / "kpis.json").read_text())
    assert kpis.keys() >= KPI_KEYS
    assert -100 <= kpis["nps"] <= 100
    assert 0 <= kpis["retention_rate"] <= 1
    validation = json.loads((out / "validation.json").read_text())["datasets"]
    assert set(validation) == {
        "accounts",
        "orders",
        "tickets",
        "survey_responses",
        "usage_events",
        "outcomes",
        "feedback",  # the demo's reviews and complaints (issue 22)
    }
    for v in validation.values():
        assert v["rows_read"] == v["rows_accepted"] + v["rows_quarantined"]
    html = (out / "report.html").read_text()
    assert "At risk" in html
    assert "<script" not in html.lower()
    emails = sorted((out / "outbox").glob("*.eml"))
    assert emails[0].name == "001-stakeholders.eml"
    assert len(emails) > 2
    msg = BytesParser(policy=policy.default).parsebytes(emails[0].read_bytes())
    assert msg["To"] == "cs-lead@example.com"
    assert msg.get_body(("plain",)) is not None
    assert msg.get_body(("html",)) is not None
    assert (
        "<style" not in msg.get_body(("html",)).get_content()
    )  # CSS is inlined for e-mail clients

    # re-running a date replaces it: same files, no duplicate history rows
    weekly_flow(WeeklyParams(config_path=config, as_of=DEMO_END))
    con = duckdb.connect(str(demo / "out" / "history.duckdb"), read_only=True)
    per_date = con.execute(
        "select as_of, count(*) from score_history group by as_of order by as_of"
    ).fetchall()
    runs = con.execute("select count(*) from run_history").fetchone()
    con.close()
    assert [d for d, _ in per_date] == [first, DEMO_END]
    assert per_date[1][1] == scores.height
    assert runs == (2,)
    assert not list((demo / "out").glob(".*staging*"))
