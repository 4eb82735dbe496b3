"""The history store: every score, measure contribution, KPI and action of every as-of date.

History is never overwritten except by a re-run of the same date, which replaces that date in
one transaction (a crash leaves the previous version). Embedded DuckDB is the default.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl

from tasks.config import Config
from tasks.errors import ConfigError

SCORE_COLUMNS = {
    "as_of": "DATE",
    "account_id": "VARCHAR",
    "score": "DOUBLE",
    "segment": "VARCHAR",
    "coverage": "DOUBLE",
    "arr": "DOUBLE",
    "usage": "DOUBLE",
    "engagement": "DOUBLE",
    "financial": "DOUBLE",
    "support": "DOUBLE",
    "outcomes": "DOUBLE",
    "satisfaction": "DOUBLE",
    "score_delta_1w": "DOUBLE",
    "score_delta_4w": "DOUBLE",
    "top_drivers": "VARCHAR",
}
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
}
_DDL = {
    "score_history": SCORE_COLUMNS,
    "measure_history": MEASURE_COLUMNS,
    "action_history": ACTION_COLUMNS,
    "kpi_history": {"as_of": "DATE", "kpis": "VARCHAR"},
    "run_history": {
        "as_of": "DATE",
        "run_at": "TIMESTAMP",
        "config_hash": "VARCHAR",
        "code_version": "VARCHAR",
        "accounts": "BIGINT",
    },
}


class HistoryStore(Protocol):
    """What the pipeline needs of a history store."""

    def write_snapshot(self, snapshot: Snapshot) -> None: ...
    def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None: ...
    def kpis_between(self, start: date, end: date) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class Snapshot:
    """Everything one as-of date writes to history."""

    def __init__(
        self,
        as_of: date,
        scores: pl.DataFrame,
        measures: pl.DataFrame,
        actions: pl.DataFrame,
        kpis: dict[str, Any],
        run: dict[str, Any],
    ) -> None:
        self.as_of, self.scores, self.measures, self.actions = as_of, scores, measures, actions
        self.kpis, self.run = kpis, run


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
    return (
        pl.concat(parts)
        if parts
        else pl.DataFrame(schema=dict.fromkeys(MEASURE_COLUMNS, pl.String))
    )


class DuckDBHistory:
    """History in an embedded DuckDB file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path))
        except duckdb.Error as err:
            raise ConfigError(
                f"History store {path} cannot be opened: {str(err).splitlines()[0]}."
            ) from None
        for table, cols in _DDL.items():
            body = ", ".join(f'"{c}" {t}' for c, t in cols.items())
            self.con.execute(f"create table if not exists {table} ({body})")

    def _insert(self, table: str, df: pl.DataFrame) -> None:
        cols = list(_DDL[table])
        frame = df.select([pl.col(c) if c in df.columns else pl.lit(None).alias(c) for c in cols])
        self.con.register("_incoming", frame.to_arrow())
        try:
            names = ", ".join(f'"{c}"' for c in cols)
            self.con.execute(f"insert into {table} ({names}) select {names} from _incoming")
        finally:
            self.con.unregister("_incoming")

    def write_snapshot(self, snapshot: Snapshot) -> None:
        """Replace everything stored for the snapshot's date in one transaction."""
        self.con.execute("begin transaction")
        try:
            for table in _DDL:
                self.con.execute(f"delete from {table} where as_of = ?", [snapshot.as_of])
            self._insert("score_history", snapshot.scores)
            self._insert("measure_history", snapshot.measures)
            self._insert("action_history", snapshot.actions)
            self._insert(
                "kpi_history",
                pl.DataFrame({"as_of": [snapshot.as_of], "kpis": [json.dumps(snapshot.kpis)]}),
            )
            self._insert("run_history", pl.DataFrame([{"as_of": snapshot.as_of, **snapshot.run}]))
            self.con.execute("commit")
        except BaseException:
            self.con.execute("rollback")
            raise

    def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None:
        """Return the stored scores (with c_<measure> contributions) of the run nearest ``target``."""
        # DuckDB 2.0 keeps a result open until it is fetched to the end: fetchall, not fetchone
        rows = self.con.execute(
            "select as_of from run_history where as_of between ? and ? order by abs(as_of - ?::date), as_of desc limit 1",
            [
                target - timedelta(days=tolerance_days),
                target + timedelta(days=tolerance_days),
                target,
            ],
        ).fetchall()
        if not rows:
            return None
        as_of = rows[0][0]
        # DuckDB 2.0: relations (con.sql) convert to Polars; execute() results no longer do
        scores = self.con.sql("select * from score_history where as_of = ?", params=[as_of]).pl()
        measures = self.con.sql(
            "select account_id, 'c_' || measure as m, contribution from measure_history where as_of = ?",
            params=[as_of],
        ).pl()
        if measures.is_empty():
            return scores
        wide = measures.pivot(on="m", index="account_id", values="contribution")
        return scores.join(wide, on="account_id", how="left")

    def kpis_between(self, start: date, end: date) -> list[dict[str, Any]]:
        """Return the stored KPIs of every date in [start, end], oldest first."""
        rows = self.con.execute(
            "select kpis from kpi_history where as_of between ? and ? order by as_of", [start, end]
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def dates(self) -> list[date]:
        """Return every as-of date in history."""
        return [
            r[0]
            for r in self.con.execute("select as_of from run_history order by as_of").fetchall()
        ]

    def close(self) -> None:
        self.con.close()


def open_history(cfg: Config) -> DuckDBHistory:
    """Open the history store named by ``[output] history``."""
    url = cfg.output.history
    if url.startswith("duckdb:///"):
        rest = url[len("duckdb:///") :]
        return DuckDBHistory(Path(rest) if rest.startswith("/") else cfg.path(rest))
    raise ConfigError(
        f"[output] history {url!r} is not supported; use duckdb:///path or postgresql://..."
    )
