"""The history store: every score, measure contribution, KPI and action of every as-of date.

History is never overwritten except by a re-run of the same date, which replaces that date in
one transaction (a crash leaves the previous version). Writers of one date are serialised: a
PostgreSQL advisory lock, or for DuckDB a lock per file inside the process and DuckDB's own
single-writer file lock between processes. Embedded DuckDB is the default; PostgreSQL is used
when ``[output] history`` is a ``postgresql://`` URL.
"""

from __future__ import annotations

import io
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import duckdb
import polars as pl
import psycopg

from tasks.config import Config
from tasks.errors import ChsError, ConfigError
from tasks.extract import resolve_uri

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
RUN_COLUMNS = {
    "as_of": "DATE",
    "run_at": "TIMESTAMP",
    "config_hash": "VARCHAR",
    "code_version": "VARCHAR",
    "accounts": "BIGINT",
    "batch": "VARCHAR",  # a backfill's fingerprint of config, code and data (for resuming)
}
_DDL = {
    "score_history": SCORE_COLUMNS,
    "measure_history": MEASURE_COLUMNS,
    "action_history": ACTION_COLUMNS,
    "kpi_history": {"as_of": "DATE", "kpis": "VARCHAR"},
    "run_history": RUN_COLUMNS,
}
_POLARS = {
    "DATE": pl.Date(),
    "VARCHAR": pl.String(),
    "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMP": pl.Datetime("us"),
    "BIGINT": pl.Int64(),
}
TREND_WEEKS = 12
LOCK_TIMEOUT_S = 600.0  # how long a writer waits for another run to finish with the store
_PG_LOCK_SPACE = 0x43485331  # first key of this store's PostgreSQL advisory locks ("CHS1")
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def schema_of(table: str, columns: Sequence[str] | None = None) -> pl.Schema:
    """Return the Polars schema of a history table (or of some of its columns)."""
    cols = _DDL[table]
    return pl.Schema({c: _POLARS[cols[c]] for c in (columns or list(cols))})


@dataclass
class Snapshot:
    """Everything one as-of date writes to history."""

    as_of: date
    scores: pl.DataFrame
    measures: pl.DataFrame
    actions: pl.DataFrame
    kpis: dict[str, Any]
    run: dict[str, Any]


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
    kpis: dict[str, Any],
    run: dict[str, Any],
) -> Snapshot:
    """Assemble the history rows of one scored date."""
    scores = scored.with_columns(pl.lit(as_of).alias("as_of"))
    return Snapshot(as_of, scores, measures_long(scores, cfg), actions, kpis, run)


def history_scores(scores: pl.DataFrame, measures: pl.DataFrame) -> pl.DataFrame:
    """Shape one date as history returns it: score columns plus one ``c_<measure>`` per measure."""
    base = _conform(scores, "score_history").sort("account_id")
    if measures.is_empty():
        return base
    wide = measures.select(
        "account_id", pl.format("c_{}", "measure").alias("m"), "contribution"
    ).pivot(on="m", index="account_id", values="contribution")
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


def _trend_window(as_of: date, weeks: int) -> tuple[date, date]:
    return as_of - timedelta(days=7 * weeks), as_of


def _conform(df: pl.DataFrame, table: str) -> pl.DataFrame:
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

    def dates(self) -> list[date]: ...
    def scores_at(self, as_of: date) -> pl.DataFrame: ...
    def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None: ...
    def kpis_between(self, start: date, end: date) -> list[dict[str, Any]]: ...
    def trend(self, as_of: date, weeks: int = TREND_WEEKS) -> pl.DataFrame: ...


class HistoryStore(HistoryReader, Protocol):
    """What the pipeline needs of a history store."""

    def write_snapshot(self, snapshot: Snapshot) -> None: ...
    def account_series(
        self, as_of: date, weeks: int = TREND_WEEKS, accounts: Sequence[str] | None = None
    ) -> pl.DataFrame: ...
    def scores_between(self, start: date, end: date) -> pl.DataFrame: ...
    def measures_between(self, start: date, end: date) -> pl.DataFrame: ...
    def runs(self) -> pl.DataFrame: ...
    def close(self) -> None: ...


def lookback_days(cfg: Config) -> int:
    """Return how far back ``history_context`` reads scores: 4 weeks, or the KPI window."""
    return max(28 + 3, cfg.windows.kpi_days + 7)


def history_context(store: HistoryReader, cfg: Config, as_of: date) -> dict[str, Any]:
    """Fetch what a run of ``as_of`` needs: last week's and 4 weeks' ago scores, the ARR at the
    KPI window start, the KPIs of the last 13 weeks and the portfolio trend before this date."""
    return {
        "prev_1w": store.scores_near(as_of - timedelta(days=7), 3),
        "prev_4w": store.scores_near(as_of - timedelta(days=28), 3),
        "arr_start": store.scores_near(as_of - timedelta(days=cfg.windows.kpi_days), 7),
        "kpis": store.kpis_between(as_of - timedelta(days=7 * 13), as_of - timedelta(days=1)),
        "trend": store.trend(as_of - timedelta(days=1), TREND_WEEKS),
    }


class _SqlHistory(ABC):
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
    def close(self) -> None: ...

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
        }
        with self._transaction(snapshot.as_of):
            for table in _DDL:
                self._execute(f"delete from {table} where as_of = ?", [snapshot.as_of])
            for table, df in rows.items():
                self._insert(table, _conform(df, table))

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

    def kpis_between(self, start: date, end: date) -> list[dict[str, Any]]:
        """Return the stored KPIs of every date in [start, end], oldest first."""
        rows = self._rows(
            "select kpis from kpi_history where as_of between ? and ? order by as_of", [start, end]
        )
        return [json.loads(r[0]) for r in rows]

    def scores_between(self, start: date, end: date) -> pl.DataFrame:
        """Return the score rows of every date in [start, end]."""
        return self._frame(
            "select * from score_history where as_of between ? and ? order by as_of, account_id",
            [start, end],
            schema_of("score_history"),
        )

    def measures_between(self, start: date, end: date) -> pl.DataFrame:
        """Return the measure rows (value, points, contribution) of every date in [start, end]."""
        return self._frame(
            "select * from measure_history where as_of between ? and ? "
            "order by as_of, account_id, measure",
            [start, end],
            schema_of("measure_history"),
        )

    def runs(self) -> pl.DataFrame:
        """Return the run metadata of every stored date."""
        return self._frame("select * from run_history order by as_of", [], schema_of("run_history"))

    def trend(self, as_of: date, weeks: int = TREND_WEEKS) -> pl.DataFrame:
        """Return the portfolio trend (one row per stored date) of ``weeks`` weeks up to ``as_of``."""
        cols = ["as_of", "score", "segment", "arr"]
        rows = self._frame(
            f"select {', '.join(cols)} from score_history where as_of between ? and ?",
            list(_trend_window(as_of, weeks)),
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
            list(_trend_window(as_of, weeks)),
            schema_of("score_history", cols),
        )
        if accounts is not None:
            rows = rows.filter(
                pl.col("account_id").is_in(pl.Series(list(accounts), dtype=pl.String))
            )
        return rows.sort("account_id", "as_of")


def _wait_for(connect: Any, what: str, timeout: float) -> Any:
    """Call ``connect`` until another process releases the store's lock or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        try:
            return connect()
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                first = str(err).splitlines()[0]
                raise ChsError(f"History store {what} cannot be opened: {first}.") from None
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _file_lock(path: Path) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(str(path.resolve()), threading.Lock())


class DuckDBHistory(_SqlHistory):
    """History in an embedded DuckDB file (one writer at a time: DuckDB locks the file)."""

    def __init__(self, path: Path, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = _file_lock(path)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_guard = threading.Lock()
        try:
            self.con = _wait_for(lambda: duckdb.connect(str(path)), str(path), lock_timeout)
        except duckdb.Error as err:
            raise ConfigError(
                f"History store {path} cannot be opened: {str(err).splitlines()[0]}."
            ) from None
        # A date's scores (under a row group, 122,880 rows) go through the write-ahead log;
        # at the default 16 MB threshold nearly every commit then checkpointed the file, which
        # cost more than the inserts (0.6-1.4 s a date at 100k accounts, growing with the
        # file). The log is as durable; a checkpoint now comes every ~10 dates at that size
        # (or at close), and what the log holds in memory stays bounded.
        self.con.execute("set checkpoint_threshold = '256MB'")
        with self._lock:
            _create_tables(self, "duckdb")

    def _reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor for reads: a connection may not be used by two threads at once,
        and a backfill stores one date in the background while the next date reads."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._cursors_guard:
                cursor = self._local.cursor = self.con.cursor()
                self._cursors.append(cursor)
        return cursor

    def _frame(self, sql: str, params: Sequence[Any], schema: pl.Schema) -> pl.DataFrame:
        # DuckDB 2.0: relations (con.sql) convert to Polars; execute() results no longer do
        df = self._reader().sql(sql, params=list(params)).pl()
        return df.cast(schema) if df.width else pl.DataFrame(schema=schema)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # DuckDB 2.0 keeps a result open until it is fetched to the end: fetchall, not fetchone
        return self._reader().execute(sql, list(params)).fetchall()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params)).fetchall()

    def _insert(self, table: str, df: pl.DataFrame) -> None:
        self.con.register("_incoming", df.to_arrow())
        try:
            names = ", ".join(f'"{c}"' for c in df.columns)
            self._execute(f"insert into {table} ({names}) select {names} from _incoming")
        finally:
            self.con.unregister("_incoming")

    @contextmanager
    def _transaction(self, as_of: date) -> Iterator[None]:
        # connections of one process share the file, so threads take the file's lock first
        with self._lock:
            self._execute("begin transaction")
            try:
                yield
                self._execute("commit")
            except BaseException:
                self._execute("rollback")
                raise

    def close(self) -> None:
        for cursor in self._cursors:
            cursor.close()
        self.con.close()


def _masked(url: str) -> str:
    """Hide the password of a database URL."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


_PG_TYPES = {"DOUBLE": "DOUBLE PRECISION"}


class PostgresHistory(_SqlHistory):
    """History in PostgreSQL; a transaction-level advisory lock per date serialises writers."""

    def __init__(self, url: str) -> None:
        self.url = _masked(url)
        try:
            self.con = psycopg.connect(url, connect_timeout=10, autocommit=True)
        except psycopg.Error as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ChsError(f"History store {self.url} cannot be opened: {first}.") from None
        with self.con.transaction():
            self._execute("select pg_advisory_xact_lock(?, 0)", [_PG_LOCK_SPACE])
            _create_tables(self, "postgres")

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def _frame(self, sql: str, params: Sequence[Any], schema: pl.Schema) -> pl.DataFrame:
        buf = io.BytesIO()
        with self.con.cursor() as cur:
            copy_sql = f"copy ({self._sql(sql)}) to stdout with (format csv, header)"
            with cur.copy(copy_sql, list(params)) as copy:
                for chunk in copy:
                    buf.write(chunk)
        # PostgreSQL writes booleans as t/f: read them as text and map them
        text = {c: (pl.String() if t == pl.Boolean() else t) for c, t in schema.items()}
        # by name, not position: a migrated table may hold its columns in another order
        df = (
            pl.read_csv(buf.getvalue(), schema_overrides=text).select(list(schema))
            if buf.tell()
            else None
        )
        if df is None:
            return pl.DataFrame(schema=schema)
        flags = [pl.col(c) == "t" for c, t in schema.items() if t == pl.Boolean()]
        return df.with_columns(flags) if flags else df

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            return cur.execute(self._sql(sql), list(params)).fetchall()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.con.cursor() as cur:
            cur.execute(self._sql(sql), list(params))

    def _insert(self, table: str, df: pl.DataFrame) -> None:
        if df.is_empty():
            return
        names = ", ".join(f'"{c}"' for c in df.columns)
        data = df.write_csv(include_header=False).encode()
        with (
            self.con.cursor() as cur,
            cur.copy(f"copy {table} ({names}) from stdin with (format csv)") as copy,
        ):
            copy.write(data)

    @contextmanager
    def _transaction(self, as_of: date) -> Iterator[None]:
        with self.con.transaction():
            # a second writer of the same date waits here until the first one commits
            self._execute("select pg_advisory_xact_lock(?, ?)", [_PG_LOCK_SPACE, as_of.toordinal()])
            yield

    def close(self) -> None:
        self.con.close()


def _create_tables(store: _SqlHistory, dialect: str) -> None:
    """Create missing tables and add columns that newer versions of the store keep."""
    types = _PG_TYPES if dialect == "postgres" else {}
    for table, cols in _DDL.items():
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
        for table in _DDL:
            store._execute(f"create index if not exists {table}_as_of on {table} (as_of)")


class PassHistory:
    """History as a backfill sees it: the store, with the dates of this pass replaced as they
    are computed, so each date reads exactly what a run of it after the previous ones would.

    Given the pass's ``span`` (first and last date), it reads the stored KPIs and portfolio
    trend the pass can need once, up front, so while the pass stores a date in the background
    the next date reads the store only for scores of dates this pass did not compute.
    """

    def __init__(
        self,
        store: HistoryReader,
        keep_days: int | None = None,
        span: tuple[date, date] | None = None,
    ) -> None:
        self.store = store
        self.keep_days = keep_days  # scores older than this (behind the newest date) are dropped
        self._stored = store.dates()
        self._added: set[date] = set()
        self._scores: dict[date, pl.DataFrame] = {}
        self._kpis: dict[date, dict[str, Any]] = {}
        self._trend: dict[date, pl.DataFrame] = {}
        self._loaded_from = date.max  # the stored KPIs and trend from here on are in memory
        self._stored_kpis: dict[date, dict[str, Any]] = {}
        self._stored_trend = pl.DataFrame()
        if span is not None:
            first, last = span
            # history_context reads KPIs 13 weeks back and the trend TREND_WEEKS back
            self._loaded_from = first - timedelta(days=7 * max(13, TREND_WEEKS) + 7)
            self._stored_kpis = {
                date.fromisoformat(k["as_of"]): k
                for k in store.kpis_between(self._loaded_from, last)
            }
            self._stored_trend = store.trend(last, (last - self._loaded_from).days // 7 + 1)

    def add(self, snapshot: Snapshot) -> None:
        """Make a computed date visible to the dates after it (it may still be being stored)."""
        scores = history_scores(snapshot.scores, snapshot.measures)
        self._added.add(snapshot.as_of)
        self._scores[snapshot.as_of] = scores
        self._kpis[snapshot.as_of] = json.loads(json.dumps(snapshot.kpis))
        self._trend[snapshot.as_of] = portfolio_trend(scores)
        if self.keep_days is not None:
            # a later date never reads these scores again; if one did, the store has them
            oldest = snapshot.as_of - timedelta(days=self.keep_days)
            for d in [d for d in self._scores if d < oldest]:
                del self._scores[d]

    def dates(self) -> list[date]:
        """Return every date in history or computed in this pass, oldest first."""
        return sorted(set(self._stored) | self._added)

    def scores_at(self, as_of: date) -> pl.DataFrame:
        """Return one date's scores, from this pass when it computed the date."""
        found = self._scores.get(as_of)
        return found if found is not None else self.store.scores_at(as_of)

    def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None:
        """Return the scores of the date nearest ``target`` (None when there is none)."""
        found = nearest(self.dates(), target, tolerance_days)
        return None if found is None else self.scores_at(found)

    def kpis_between(self, start: date, end: date) -> list[dict[str, Any]]:
        """Return the KPIs of every date in [start, end], oldest first."""
        if start >= self._loaded_from:
            by_date = {d: k for d, k in self._stored_kpis.items() if start <= d <= end}
        else:
            stored = self.store.kpis_between(start, end)
            by_date = {date.fromisoformat(k["as_of"]): k for k in stored}
        by_date |= {d: k for d, k in self._kpis.items() if start <= d <= end}
        return [by_date[d] for d in sorted(by_date)]

    def trend(self, as_of: date, weeks: int = TREND_WEEKS) -> pl.DataFrame:
        """Return the portfolio trend of ``weeks`` weeks up to ``as_of``."""
        start, end = _trend_window(as_of, weeks)
        if start >= self._loaded_from:
            stored = self._stored_trend.filter(pl.col("as_of").is_between(start, end))
        else:
            stored = self.store.trend(as_of, weeks)
        stored = stored.filter(~pl.col("as_of").is_in(pl.Series(list(self._trend), dtype=pl.Date)))
        ours = [t for d, t in self._trend.items() if start <= d <= end]
        return pl.concat([stored, *ours]).sort("as_of")


def open_history(cfg: Config, lock_timeout: float = LOCK_TIMEOUT_S) -> HistoryStore:
    """Open the history store named by ``[output] history``."""
    url = cfg.output.history
    if url.startswith("duckdb:///"):
        rest = url[len("duckdb:///") :]
        return DuckDBHistory(Path(rest) if rest.startswith("/") else cfg.path(rest), lock_timeout)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresHistory(resolve_uri(url))
    raise ConfigError(
        f"[output] history {url!r} is not supported; use duckdb:///path or postgresql://..."
    )
