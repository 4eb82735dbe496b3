"""The history store's tables, the rows one date writes (``Snapshot``), and what readers expect.

History is never overwritten except by a re-run of the same date, which replaces that date in
one transaction (a crash leaves the previous version).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

import polars as pl

from tasks.config import Config
from tasks.kpis import Kpis

SCORE_COLUMNS = {
    "as_of": "DATE",
    "account_id": "VARCHAR",
    "score": "DOUBLE",
    "segment": "VARCHAR",
    "coverage": "DOUBLE",
    "insufficient_data": "BOOLEAN",
    "arr": "DOUBLE",
    "usage": "DOUBLE",
    "engagement": "DOUBLE",
    "financial": "DOUBLE",
    "support": "DOUBLE",
    "outcomes": "DOUBLE",
    "satisfaction": "DOUBLE",
    "score_delta_1w": "DOUBLE",
    "score_delta_4w": "DOUBLE",
    "drop_alert": "BOOLEAN",
    "top_drivers": "VARCHAR",
    "change_drivers": "VARCHAR",
    "tier": "VARCHAR",
    "model": "VARCHAR",  # the scoring model: "default" or "tier:<tier>"
    "computed_score": "DOUBLE",  # the model's score where a CSM override replaced it
    "computed_segment": "VARCHAR",
    "override_reason": "VARCHAR",
    "override_expires": "DATE",
    "override_author": "VARCHAR",
    "p_churn_90d": "DOUBLE",  # calibrated on earlier snapshots (tasks/calibrate.py)
    "expected_arr_at_risk": "DOUBLE",
}
RISK_COLUMNS = [
    "as_of",
    "account_id",
    "score",
    "segment",
    "computed_score",
    "computed_segment",
]  # what calibration reads
MEASURE_COLUMNS = {
    "as_of": "DATE",
    "account_id": "VARCHAR",
    "measure": "VARCHAR",
    "value": "DOUBLE",
    "points": "DOUBLE",
    "contribution": "DOUBLE",
}
ACTION_COLUMNS = {
    "account_id": "VARCHAR",
    "as_of": "DATE",
    "action": "VARCHAR",
    "reason": "VARCHAR",
    "owner": "VARCHAR",
    "priority": "VARCHAR",
    "due_date": "DATE",
    # the lifecycle (SPEC 10.1): every live action of the date, and closed ones in cooldown
    "action_id": "VARCHAR",
    "status": "VARCHAR",
    "opened_on": "DATE",
    "weeks_open": "BIGINT",
    "overdue": "BOOLEAN",
    "status_at": "TIMESTAMP",
    "snooze_until": "DATE",
    "closed_on": "DATE",
    "last_fired": "DATE",
    "holdout": "BOOLEAN",
    "opened_score": "DOUBLE",
    "opened_segment": "VARCHAR",
    "arr": "DOUBLE",  # the account's ARR when the action was last ranked
}
# every status change of an action, with who made it and when (as_of: the run that saw it)
ACTION_EVENT_COLUMNS = {
    "as_of": "DATE",
    "action_id": "VARCHAR",
    "account_id": "VARCHAR",
    "action": "VARCHAR",
    "owner": "VARCHAR",
    "status": "VARCHAR",
    "previous": "VARCHAR",
    "changed_at": "TIMESTAMP",
    "author": "VARCHAR",
    "note": "VARCHAR",
    "source": "VARCHAR",
}
RUN_COLUMNS = {
    "as_of": "DATE",
    "run_at": "TIMESTAMP",
    "config_hash": "VARCHAR",
    "code_version": "VARCHAR",
    "accounts": "BIGINT",
    "batch": "VARCHAR",  # a backfill's fingerprint of config, code and data (for resuming)
}
DDL = {
    "score_history": SCORE_COLUMNS,
    "measure_history": MEASURE_COLUMNS,
    "action_history": ACTION_COLUMNS,
    "kpi_history": {"as_of": "DATE", "kpis": "VARCHAR"},
    "run_history": RUN_COLUMNS,
    "action_events": ACTION_EVENT_COLUMNS,
}
# every value `chs writeback` sent (or failed to send), one row per account and property;
# not replaced with a date (DDL), so a re-run of a date knows what the CRM already holds
WRITEBACK_COLUMNS = {
    "target": "VARCHAR",
    "as_of": "DATE",  # the scores' date
    "account_id": "VARCHAR",
    "crm_id": "VARCHAR",
    "property": "VARCHAR",
    "value": "VARCHAR",  # as sent, in JSON text ("null" clears the property)
    "written_at": "TIMESTAMP",
    "status": "VARCHAR",  # ok | failed
    "error": "VARCHAR",
}
LOG_DDL = {"writeback_log": WRITEBACK_COLUMNS}
_POLARS = {
    "DATE": pl.Date(),
    "VARCHAR": pl.String(),
    "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMP": pl.Datetime("us"),
    "BIGINT": pl.Int64(),
}
TREND_WEEKS = 12


def schema_of(table: str, columns: Sequence[str] | None = None) -> pl.Schema:
    """Return the Polars schema of a history table (or of some of its columns)."""
    cols = {**DDL, **LOG_DDL}[table]
    return pl.Schema({c: _POLARS[cols[c]] for c in (columns or list(cols))})


@dataclass
class Snapshot:
    """Everything one as-of date writes to history."""

    as_of: date
    scores: pl.DataFrame
    measures: pl.DataFrame
    actions: pl.DataFrame
    kpis: Kpis
    run: dict[str, Any]
    action_events: pl.DataFrame | None = None  # the status changes of the run


def measures_long(scores: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Unpivot each account's measure values, points and contributions into history rows."""
    parts = []
    for m in cfg.scoring.measures:
        value = (
            pl.col(m.source).cast(pl.Float64, strict=False)
            if m.source in scores.columns
            else pl.lit(None, pl.Float64)
        )
        parts.append(
            scores.select(
                pl.col("as_of"),
                pl.col("account_id"),
                pl.lit(m.name).alias("measure"),
                value.alias("value"),
                pl.col(f"m_{m.name}").alias("points"),
                pl.col(f"c_{m.name}").alias("contribution"),
            )
        )
    schema = schema_of("measure_history")
    return pl.concat(parts).cast(schema) if parts else pl.DataFrame(schema=schema)


def make_snapshot(
    cfg: Config,
    as_of: date,
    scored: pl.DataFrame,
    actions: pl.DataFrame,
    kpis: Kpis,
    run: dict[str, Any],
) -> Snapshot:
    """Assemble the history rows of one scored date."""
    scores = scored.with_columns(pl.lit(as_of).alias("as_of"))
    return Snapshot(as_of, scores, measures_long(scores, cfg), actions, kpis, run)


def history_scores(scores: pl.DataFrame, measures: pl.DataFrame) -> pl.DataFrame:
    """Shape one date as history returns it: score columns plus one ``c_<measure>`` per measure."""
    base = conform(scores, "score_history").sort("account_id")
    if measures.is_empty():
        return base
    wide = measures.select(
        "account_id", pl.format("c_{}", "measure").alias("m"), "contribution"
    ).pivot(on="m", index="account_id", values="contribution")
    return base.join(wide, on="account_id", how="left")


def snapshot_scores(snapshot: Snapshot) -> pl.DataFrame:
    """Return ``history_scores`` of a ``make_snapshot`` snapshot without pivoting its measures.

    Its measure rows' contributions are the scores' own ``c_<measure>`` columns, in the
    measures' order: a join of those columns gives the same frame as the pivot of a million
    rows, which took most of a backfill date's 0.7 s in ``PassHistory.add`` at 100k accounts.
    """
    names = snapshot.measures["measure"].unique(maintain_order=True).to_list()
    if not all(f"c_{n}" in snapshot.scores.columns for n in names):  # not one make_snapshot made
        return history_scores(snapshot.scores, snapshot.measures)
    base = conform(snapshot.scores, "score_history").sort("account_id")
    if not names:
        return base
    wide = snapshot.scores.select("account_id", *[pl.col(f"c_{n}").cast(pl.Float64) for n in names])
    return base.join(wide, on="account_id", how="left")


def nearest(dates: Sequence[date], target: date, tolerance_days: int) -> date | None:
    """Return the date closest to ``target`` within the tolerance (the later one on a tie)."""
    near = [d for d in dates if abs((d - target).days) <= tolerance_days]
    return min(near, key=lambda d: (abs((d - target).days), -d.toordinal())) if near else None


def portfolio_trend(scores: pl.DataFrame) -> pl.DataFrame:
    """Summarise score rows of many dates into one row per date: mean score and segments."""
    seg = pl.col("segment")
    return (
        scores.group_by("as_of")
        .agg(
            pl.len().alias("accounts"),
            pl.col("score").count().alias("scored"),
            pl.col("score").mean().alias("mean_score"),
            pl.col("score").median().alias("median_score"),
            (seg == "healthy").sum().alias("healthy"),
            (seg == "neutral").sum().alias("neutral"),
            (seg == "at_risk").sum().alias("at_risk"),
            seg.is_null().sum().alias("insufficient_data"),
            pl.col("arr").filter(seg == "at_risk").sum().alias("arr_at_risk"),
        )
        .sort("as_of")
    )


def trend_window(as_of: date, weeks: int) -> tuple[date, date]:
    """Return the first and last date of the ``weeks``-week trend ending on ``as_of``."""
    return as_of - timedelta(days=7 * weeks), as_of


def conform(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Select a table's columns in order and type; columns the frame lacks are null."""
    schema = schema_of(table)
    return df.select(
        [
            pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c)
            for c, t in schema.items()
        ]
    )


class HistoryReader(Protocol):
    """What a run reads from history."""

    def dates(self) -> list[date]:
        """Return every as-of date in history, oldest first."""

    def scores_at(self, as_of: date) -> pl.DataFrame:
        """Return one date's stored scores with each measure's ``c_<measure>`` contribution."""

    def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None:
        """Return the scores of the date nearest ``target`` (None when there is none)."""

    def kpis_between(self, start: date, end: date) -> list[Kpis]:
        """Return the KPIs of every date in [start, end], oldest first."""

    def trend(self, as_of: date, weeks: int = TREND_WEEKS) -> pl.DataFrame:
        """Return the portfolio trend of ``weeks`` weeks up to ``as_of``."""

    def actions_before(self, as_of: date) -> pl.DataFrame:
        """Return the actions as the latest run before ``as_of`` left them."""

    def action_ids_before(self, as_of: date) -> set[str]:
        """Return every action id stored before ``as_of``."""

    def action_openings(self, until: date) -> pl.DataFrame:
        """Return each action's opening row up to ``until``."""

    def scores_between(self, start: date, end: date) -> pl.DataFrame:
        """Return the score rows of every date in [start, end]."""

    def risk_history(self, end: date) -> pl.DataFrame:
        """Return the scores calibration trains on, of dates up to ``end``."""


class HistoryStore(HistoryReader, Protocol):
    """What the pipeline needs of a history store."""

    def write_snapshot(self, snapshot: Snapshot) -> None:
        """Replace everything stored for the snapshot's date in one transaction."""

    def account_series(
        self, as_of: date, weeks: int = TREND_WEEKS, accounts: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """Return each account's score and segment per date of ``weeks`` weeks up to ``as_of``."""

    def measures_between(self, start: date, end: date) -> pl.DataFrame:
        """Return the measure rows (value, points, contribution) of every date in [start, end]."""

    def runs(self) -> pl.DataFrame:
        """Return the run metadata of every stored date."""

    def close(self) -> None:
        """Release the store's connections."""
