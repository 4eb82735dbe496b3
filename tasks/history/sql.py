"""The queries both SQL history stores share; each store supplies connection, transaction and I/O."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, cast

import polars as pl

from tasks.faults import fault_point
from tasks.history.schema import (
    DDL,
    LOG_DDL,
    RISK_COLUMNS,
    TREND_WEEKS,
    Snapshot,
    conform,
    history_scores,
    nearest,
    portfolio_trend,
    schema_of,
    trend_window,
)
from tasks.kpis import Kpis

LOCK_TIMEOUT_S = 600.0  # how long a writer waits for another run to finish with the store


class SqlHistory(ABC):
    """The queries both stores share; subclasses provide connection, transaction and I/O."""

    @abstractmethod
    def _frame(self, sql: str, params: Sequence[Any], schema: pl.Schema) -> pl.DataFrame: ...

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def _insert(self, table: str, df: pl.DataFrame) -> None: ...

    @abstractmethod
    def _transaction(self, as_of: date) -> AbstractContextManager[None]: ...

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections."""

    def write_snapshot(self, snapshot: Snapshot) -> None:
        """Replace everything stored for the snapshot's date in one locked transaction."""
        rows = {
            "score_history": snapshot.scores,
            "measure_history": snapshot.measures,
            "action_history": snapshot.actions,
            "kpi_history": pl.DataFrame(
                {"as_of": [snapshot.as_of], "kpis": [json.dumps(snapshot.kpis)]}
            ),
            "run_history": pl.DataFrame([{"as_of": snapshot.as_of, **snapshot.run}]),
            "action_events": snapshot.action_events
            if snapshot.action_events is not None
            else pl.DataFrame(schema=schema_of("action_events")),
        }
        with self._transaction(snapshot.as_of):
            for table in DDL:
                self._execute(f"delete from {table} where as_of = ?", [snapshot.as_of])
            for n, (table, df) in enumerate(rows.items()):
                if n == 2:  # test-only: CHS_FAULT_AT=store stops here, half the rows inserted
                    fault_point("store")
                self._insert(table, conform(df, table))

    def dates(self) -> list[date]:
        """Return every as-of date in history, oldest first."""
        return [r[0] for r in self._rows("select as_of from run_history order by as_of", [])]

    def scores_at(self, as_of: date) -> pl.DataFrame:
        """Return one date's stored scores with each measure's ``c_<measure>`` contribution."""
        scores = self._frame(
            "select * from score_history where as_of = ?", [as_of], schema_of("score_history")
        )
        cols = ["account_id", "measure", "contribution"]
        measures = self._frame(
            f"select {', '.join(cols)} from measure_history where as_of = ?",
            [as_of],
            schema_of("measure_history", cols),
        )
        return history_scores(scores, measures)

    def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None:
        """Return the stored scores of the run nearest ``target`` (None when there is none)."""
        found = nearest(self.dates(), target, tolerance_days)
        return None if found is None else self.scores_at(found)

    def kpis_between(self, start: date, end: date) -> list[Kpis]:
        """Return the stored KPIs of every date in [start, end], oldest first."""
        rows = self._rows(
            "select kpis from kpi_history where as_of between ? and ? order by as_of", [start, end]
        )
        return [cast(Kpis, json.loads(r[0])) for r in rows]

    def scores_between(self, start: date, end: date) -> pl.DataFrame:
        """Return the score rows of every date in [start, end]."""
        return self._frame(
            "select * from score_history where as_of between ? and ? order by as_of, account_id",
            [start, end],
            schema_of("score_history"),
        )

    def risk_history(self, end: date) -> pl.DataFrame:
        """Return every stored date's scores up to ``end``, the rows calibration trains on."""
        return self._frame(
            f"select {', '.join(RISK_COLUMNS)} from score_history where as_of <= ? "
            "order by as_of, account_id",
            [end],
            schema_of("score_history", RISK_COLUMNS),
        )

    def measures_between(self, start: date, end: date) -> pl.DataFrame:
        """Return the measure rows (value, points, contribution) of every date in [start, end]."""
        return self._frame(
            "select * from measure_history where as_of between ? and ? "
            "order by as_of, account_id, measure",
            [start, end],
            schema_of("measure_history"),
        )

    def actions_before(self, as_of: date) -> pl.DataFrame:
        """Return the actions as the latest run before ``as_of`` left them (point in time)."""
        return self._frame(
            "select * from action_history where as_of = "
            "(select max(as_of) from run_history where as_of < ?)",
            [as_of],
            schema_of("action_history"),
        )

    def action_ids_before(self, as_of: date) -> set[str]:
        """Return the id of every action any run before ``as_of`` kept."""
        rows = self._rows(
            "select distinct action_id from action_history where as_of < ? "
            "and action_id is not null",
            [as_of],
        )
        return {r[0] for r in rows}

    def action_openings(self, until: date) -> pl.DataFrame:
        """Return each action's first stored row up to ``until``: who, which playbook, when it
        opened, held out or not, and the score it opened with.
        """
        cols = ["account_id", "action", "action_id", "opened_on", "holdout", "opened_score"]
        cols += ["opened_segment"]
        return self._frame(
            f"select {', '.join(cols)} from action_history where as_of <= ? "
            "and action_id is not null and as_of = opened_on",
            [until],
            schema_of("action_history", cols),
        )

    def action_events_between(self, start: date, end: date) -> pl.DataFrame:
        """Return the status changes runs in [start, end] saw."""
        return self._frame(
            "select * from action_events where as_of between ? and ? order by changed_at",
            [start, end],
            schema_of("action_events"),
        )

    def runs(self) -> pl.DataFrame:
        """Return the run metadata of every stored date."""
        return self._frame("select * from run_history order by as_of", [], schema_of("run_history"))

    def trend(self, as_of: date, weeks: int = TREND_WEEKS) -> pl.DataFrame:
        """Return the portfolio trend (one row per stored date) of ``weeks`` weeks up to ``as_of``."""
        cols = ["as_of", "score", "segment", "arr"]
        rows = self._frame(
            f"select {', '.join(cols)} from score_history where as_of between ? and ?",
            list(trend_window(as_of, weeks)),
            schema_of("score_history", cols),
        )
        return portfolio_trend(rows)

    def account_series(
        self, as_of: date, weeks: int = TREND_WEEKS, accounts: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """Return each account's score and segment per stored date of ``weeks`` weeks up to ``as_of``."""
        cols = ["account_id", "as_of", "score", "segment", "score_delta_1w"]
        rows = self._frame(
            f"select {', '.join(cols)} from score_history where as_of between ? and ?",
            list(trend_window(as_of, weeks)),
            schema_of("score_history", cols),
        )
        if accounts is not None:
            rows = rows.filter(
                pl.col("account_id").is_in(pl.Series(list(accounts), dtype=pl.String).implode())
            )
        return rows.sort("account_id", "as_of")


_PG_TYPES = {"DOUBLE": "DOUBLE PRECISION"}


def create_tables(store: SqlHistory, dialect: str) -> None:
    """Create missing tables and add columns that newer versions of the store keep."""
    types = _PG_TYPES if dialect == "postgres" else {}
    for table, cols in {**DDL, **LOG_DDL}.items():
        body = ", ".join(f'"{c}" {types.get(t, t)}' for c, t in cols.items())
        store._execute(f"create table if not exists {table} ({body})")
        have = {
            r[0]
            for r in store._rows(
                "select column_name from information_schema.columns where table_name = ?", [table]
            )
        }
        for c, t in cols.items():
            if c not in have:
                store._execute(f'alter table {table} add column "{c}" {types.get(t, t)}')
    if dialect == "postgres":  # DuckDB's zone maps already skip other dates
        for table in DDL:
            store._execute(f"create index if not exists {table}_as_of on {table} (as_of)")
