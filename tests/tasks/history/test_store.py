"""The history store on DuckDB and on a real PostgreSQL: round trips, atomic re-runs, locking."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

from tasks.config import parse_config
from tasks.errors import ChsError, ConfigError
from tasks.history.connect import open_history
from tasks.history.context import history_context
from tasks.history.duckdb_store import DuckDBHistory
from tasks.history.memory import PassHistory
from tasks.history.postgres_store import PostgresHistory
from tasks.history.schema import (
    HistoryStore,
    Snapshot,
    conform,
    history_scores,
    make_snapshot,
    nearest,
    portfolio_trend,
    snapshot_scores,
)

D1, D2 = date(2026, 3, 2), date(2026, 3, 9)


def snapshot(as_of: date, marker: str = "a", accounts: int = 3) -> Snapshot:
    """A tiny snapshot; ``marker`` tags every row so a test can tell versions apart."""
    ids = [f"acc{i}" for i in range(accounts)]
    scores = pl.DataFrame(
        {
            "as_of": [as_of] * accounts,
            "account_id": ids,
            "score": [30.0 + 20 * i for i in range(accounts)],
            "segment": ["at_risk", "neutral", "healthy"][:accounts] + ["healthy"] * (accounts - 3),
            "arr": [1000.0] * accounts,
            "top_drivers": [marker] * accounts,
            "insufficient_data": [False] * accounts,
        }
    )
    measures = pl.DataFrame(
        {
            "as_of": [as_of] * (2 * accounts),
            "account_id": ids * 2,
            "measure": ["nps_account"] * accounts + ["csat_pct"] * accounts,
            "value": [1.0] * (2 * accounts),
            "points": [50.0] * (2 * accounts),
            "contribution": [10.0 + i for i in range(2 * accounts)],
        }
    )
    actions = pl.DataFrame(
        {
            "account_id": ["acc0"],
            "as_of": [as_of],
            "action": [f"call {marker}"],
            "reason": ["at risk"],
            "owner": ["csm@example.com"],
            "priority": ["high"],
            "due_date": [as_of + timedelta(days=7)],
        }
    )
    kpis = {"as_of": as_of.isoformat(), "mean_score": 50.0, "marker": marker}
    run = {"run_at": datetime(2026, 3, 10, 8), "config_hash": marker, "code_version": "test"}
    return Snapshot(as_of, scores, measures, actions, kpis, run)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], HistoryStore]:
    """Return a function that opens a fresh, empty store (each call is a new connection)."""
    if request.param == "duckdb":
        return lambda: DuckDBHistory(tmp_path / "history.duckdb")
    url = _own_schema(request.getfixturevalue("pg_database"))  # one schema per test
    return lambda: PostgresHistory(url)


@pytest.fixture
def store(open_store: Callable[[], HistoryStore]) -> Iterator[HistoryStore]:
    s = open_store()
    yield s
    s.close()


def test_a_snapshot_reads_back_as_written(store: HistoryStore) -> None:
    snap = snapshot(D1)
    store.write_snapshot(snap)
    store.write_snapshot(snapshot(D2, "b"))
    assert store.dates() == [D1, D2]
    got = store.scores_at(D1)
    assert_frame_equal(got, history_scores(snap.scores, snap.measures), check_column_order=False)
    assert got["c_csat_pct"].to_list() == [13.0, 14.0, 15.0]  # contributions come back wide
    assert [k["marker"] for k in store.kpis_between(D1, D2)] == ["a", "b"]
    assert_frame_equal(
        store.measures_between(D1, D1).drop("as_of"),
        snap.measures.sort("account_id", "measure").drop("as_of"),
        check_column_order=False,
    )
    runs = store.runs()
    assert runs["config_hash"].to_list() == ["a", "b"]
    assert runs["accounts"].to_list() == [None, None]  # not given: stored as null


def test_scores_near_takes_the_closest_date_then_the_later(store: HistoryStore) -> None:
    store.write_snapshot(snapshot(D1))
    store.write_snapshot(snapshot(D2, "b"))
    near = store.scores_near(D1 + timedelta(days=4), 3)  # 3 days from D2, 4 from D1
    assert near is not None
    assert near["top_drivers"].unique().to_list() == ["b"]
    assert store.scores_near(D1 - timedelta(days=10), 3) is None


def test_trend_and_account_series_come_from_history(store: HistoryStore) -> None:
    store.write_snapshot(snapshot(D1))
    store.write_snapshot(snapshot(D2, "b", accounts=4))
    trend = store.trend(D2, weeks=1)
    assert trend["as_of"].to_list() == [D1, D2]
    assert trend["accounts"].to_list() == [3, 4]
    assert trend["at_risk"].to_list() == [1, 1]
    assert trend["mean_score"].to_list() == [50.0, 60.0]  # 30, 50, 70 (, 90)
    assert store.trend(D2, weeks=0)["as_of"].to_list() == [D2]
    series = store.account_series(D2, weeks=1, accounts=["acc0"])
    assert series.select("account_id", "as_of", "score").rows() == [
        ("acc0", D1, 30.0),
        ("acc0", D2, 30.0),
    ]


def test_rerunning_a_date_replaces_it(store: HistoryStore) -> None:
    store.write_snapshot(snapshot(D1, "old", accounts=5))
    store.write_snapshot(snapshot(D1, "new"))
    scores = store.scores_between(D1, D1)
    assert scores.height == 3
    assert scores["top_drivers"].unique().to_list() == ["new"]
    assert store.measures_between(D1, D1).height == 6
    assert store.runs()["config_hash"].to_list() == ["new"]
    assert [k["marker"] for k in store.kpis_between(D1, D1)] == ["new"]


def test_a_write_failing_half_way_leaves_the_previous_version(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_snapshot(snapshot(D1, "old"))
    insert = store._insert  # type: ignore[attr-defined]

    def failing(table: str, df: pl.DataFrame) -> None:
        if table == "measure_history":  # score rows are already in: half the snapshot
            raise RuntimeError("disk full")
        insert(table, df)

    monkeypatch.setattr(store, "_insert", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        store.write_snapshot(snapshot(D1, "new", accounts=4))
    monkeypatch.undo()
    assert store.scores_between(D1, D1)["top_drivers"].to_list() == ["old"] * 3
    assert store.measures_between(D1, D1).height == 6
    assert store.runs()["config_hash"].to_list() == ["old"]
    store.write_snapshot(snapshot(D2))  # the connection is usable after the rollback
    assert store.dates() == [D1, D2]


def _slow_writer(
    store: HistoryStore, marker: str, accounts: int, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], None]:
    insert = store._insert  # type: ignore[attr-defined]

    def slow(table: str, df: pl.DataFrame) -> None:
        insert(table, df)
        if table == "score_history":
            time.sleep(0.5)  # the other writer gets every chance to interleave here

    monkeypatch.setattr(store, "_insert", slow)
    return lambda: store.write_snapshot(snapshot(D1, marker, accounts))


def test_two_writers_of_one_date_never_interleave(
    open_store: Callable[[], HistoryStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = open_store(), open_store()
    errors: list[BaseException] = []

    def run(write: Callable[[], None]) -> None:
        try:
            write()
        except BaseException as err:
            errors.append(err)

    threads = [
        threading.Thread(target=run, args=(_slow_writer(a, "a", 3, monkeypatch),)),
        threading.Thread(target=run, args=(_slow_writer(b, "b", 4, monkeypatch),)),
    ]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    a.close()
    assert not errors
    scores, measures = b.scores_between(D1, D1), b.measures_between(D1, D1)
    b.close()
    # whoever committed last wins whole: its scores, its measures, nothing of the other
    markers = scores["top_drivers"].unique().to_list()
    assert len(markers) == 1
    assert scores.height == {"a": 3, "b": 4}[markers[0]]
    assert measures.height == 2 * scores.height


def _write_in_process(path: str, marker: str, accounts: int, hold: float) -> None:
    store = DuckDBHistory(Path(path))
    store.write_snapshot(snapshot(D1, marker, accounts))
    time.sleep(hold)  # keep DuckDB's file lock a while: the other process must wait for it
    store.close()


@pytest.mark.slow
def test_duckdb_writers_in_two_processes_wait_for_each_other(tmp_path: Path) -> None:
    path = str(tmp_path / "history.duckdb")
    ctx = multiprocessing.get_context("spawn")
    first = ctx.Process(target=_write_in_process, args=(path, "a", 3, 2.0))
    first.start()
    deadline = time.monotonic() + 30
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = ctx.Process(target=_write_in_process, args=(path, "b", 4, 0.0))
    second.start()
    first.join(60)
    second.join(60)
    assert (first.exitcode, second.exitcode) == (0, 0)
    store = DuckDBHistory(Path(path))
    scores = store.scores_between(D1, D1)
    store.close()
    assert scores["top_drivers"].unique().to_list() == ["b"]  # the second waited, then replaced
    assert scores.height == 4


@pytest.mark.slow
def test_a_locked_duckdb_file_fails_with_one_sentence_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    ctx = multiprocessing.get_context("spawn")
    holder = ctx.Process(target=_write_in_process, args=(str(path), "a", 3, 5.0))
    holder.start()
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    with pytest.raises(ChsError, match="cannot be opened"):
        DuckDBHistory(path, lock_timeout=0.5)
    holder.join(60)


def test_pass_history_reads_this_pass_before_the_store(store: HistoryStore) -> None:
    store.write_snapshot(snapshot(D1, "stored"))
    store.write_snapshot(snapshot(D2, "stored"))
    view = PassHistory(store)
    view.add(snapshot(D2, "pass", accounts=4))
    near = view.scores_near(D2, 0)
    assert near is not None
    assert near["top_drivers"].unique().to_list() == ["pass"]
    assert [k["marker"] for k in view.kpis_between(D1, D2)] == ["stored", "pass"]
    assert view.trend(D2, 1)["accounts"].to_list() == [3, 4]
    # what the pass returns has the store's shape, so a run reads the same either way
    stored = store.scores_at(D1)
    assert view.scores_at(D1).columns == stored.columns
    view.add(snapshot(D1, "stored"))
    assert_frame_equal(view.scores_at(D1), stored, check_column_order=False)


def test_pass_history_keeps_only_the_scores_later_dates_read(store: HistoryStore) -> None:
    days = [D1 + timedelta(weeks=i) for i in range(6)]
    view = PassHistory(store, keep_days=15)
    for i, d in enumerate(days):
        snap = snapshot(d, f"pass{i}")
        store.write_snapshot(snap)  # a backfill stores each date before the next reads it
        view.add(snap)
    assert sorted(view._scores) == days[-3:]  # 15 days back from the newest: 3 weekly dates
    assert view.dates() == days  # the dropped dates still exist, read from the store
    old = view.scores_near(days[0], 0)
    assert old is not None
    assert old["top_drivers"].unique().to_list() == ["pass0"]
    assert_frame_equal(old, store.scores_at(days[0]))


def test_pass_history_reads_kpis_and_trend_of_its_span_once(store: HistoryStore) -> None:
    """With its span, the view reads stored KPIs and trend up front, with the same results.

    A backfill stores a date in the background while the next reads; what the view returns
    equals reading the store each time.
    """
    for i in range(4):
        store.write_snapshot(snapshot(D1 + timedelta(weeks=i), f"stored{i}"))
    calls: list[str] = []

    class Counting:  # the real store, counting the reads that go to it
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(store, name)

    d3, d5 = D1 + timedelta(weeks=2), D1 + timedelta(weeks=4)
    preloaded = PassHistory(Counting(), span=(d3, d5))  # type: ignore[arg-type]
    lazy = PassHistory(store)
    for view in (preloaded, lazy):
        view.add(snapshot(d3, "pass", accounts=4))
    calls.clear()
    for end in (d3, d5):
        assert preloaded.kpis_between(D1, end) == lazy.kpis_between(D1, end)
        assert_frame_equal(preloaded.trend(end, 3), lazy.trend(end, 3))
    assert calls == []
    assert [k["marker"] for k in preloaded.kpis_between(D1, d5)] == [
        "stored0",
        "stored1",
        "pass",
        "stored3",
    ]
    assert preloaded.trend(d5, 12)["accounts"].to_list() == [3, 3, 4, 3]
    # before its span the view reads the store, as without one
    early = date(2025, 1, 6)
    assert preloaded.kpis_between(early, D2) == lazy.kpis_between(early, D2)
    assert "kpis_between" in calls


def test_a_store_reads_in_one_thread_while_another_writes(
    open_store: Callable[[], HistoryStore],
) -> None:
    """Each thread reads on its own cursor (PostgreSQL: the ADBC connection) and sees whole
    dates only.

    A backfill stores date N on a task thread while date N+1 reads.
    """
    store = open_store()
    days = [D1 + timedelta(weeks=i) for i in range(12)]
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for d in days:
                    seen.append(store.scores_at(d).height)
                store.kpis_between(days[0], days[-1])
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for d in days:
            store.write_snapshot(snapshot(d, "w", accounts=50))
    finally:
        stop.set()
        reader.join(60)
    assert errors == []
    assert seen
    assert set(seen) <= {0, 50}  # a date is absent or whole, never half written
    assert [len(store.scores_at(d)) for d in days] == [50] * len(days)
    store.close()


def test_history_context_of_a_run() -> None:
    cfg = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())

    class Fake:
        def dates(self) -> list[date]:
            return [D1]

        def scores_at(self, as_of: date) -> pl.DataFrame:
            return pl.DataFrame({"as_of": [as_of]})

        def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None:
            found = nearest(self.dates(), target, tolerance_days)
            return None if found is None else self.scores_at(found)

        def kpis_between(self, start: date, end: date) -> list[dict[str, Any]]:
            return [{"as_of": start.isoformat(), "end": end.isoformat()}]

        def trend(self, as_of: date, weeks: int = 12) -> pl.DataFrame:
            return pl.DataFrame({"as_of": [as_of], "weeks": [weeks]})

        def actions_before(self, as_of: date) -> pl.DataFrame:
            return pl.DataFrame({"as_of": [D1]})

        def action_ids_before(self, as_of: date) -> set[str]:
            return {"a1"}

        def action_openings(self, until: date) -> pl.DataFrame:
            return pl.DataFrame(schema={"opened_on": pl.Date})

        def scores_between(self, start: date, end: date) -> pl.DataFrame:
            return pl.DataFrame()

        def risk_history(self, end: date) -> pl.DataFrame:
            # one read serves calibration and the effectiveness: up to the later of their ends
            assert end == D2 - timedelta(days=34)
            return pl.DataFrame({"as_of": [D2 - timedelta(days=90), end]})

    ctx = history_context(Fake(), cfg, D2)
    assert ctx.action_ids == {"a1"}
    assert ctx.risk is not None
    # calibration reads only snapshots whose 90-day outcome is known by the run date
    assert ctx.risk["as_of"].to_list() == [D2 - timedelta(days=90)]
    assert ctx.prev_1w is not None
    assert ctx.prev_1w["as_of"].to_list() == [D1]
    assert ctx.prev_4w is None
    assert ctx.kpis == [{"as_of": "2025-12-08", "end": "2026-03-08"}]  # 13 weeks, not today
    assert ctx.trend.row(0) == (date(2026, 3, 8), 12)  # the trend stops before today


def test_nearest() -> None:
    days = [date(2026, 1, 1), date(2026, 1, 3)]
    assert nearest(days, date(2026, 1, 2), 1) == date(2026, 1, 3)  # a tie goes to the later date
    assert nearest(days, date(2026, 1, 1), 0) == date(2026, 1, 1)
    assert nearest(days, date(2026, 1, 10), 3) is None


def test_portfolio_trend_counts_segments_per_date() -> None:
    rows = pl.DataFrame(
        {
            "as_of": [D1, D1, D1, D2],
            "score": [20.0, 80.0, None, 50.0],
            "segment": ["at_risk", "healthy", None, "neutral"],
            "arr": [100.0, 200.0, 300.0, 400.0],
        }
    )
    t = portfolio_trend(rows)
    assert t.row(0, named=True) == {
        "as_of": D1,
        "accounts": 3,
        "scored": 2,
        "mean_score": 50.0,
        "median_score": 50.0,
        "healthy": 1,
        "neutral": 0,
        "at_risk": 1,
        "insufficient_data": 1,
        "arr_at_risk": 100.0,
    }


def test_open_history_rejects_unknown_urls_and_masks_passwords() -> None:
    cfg = parse_config(
        {"sources": {"accounts": {"uri": "a.csv"}}, "output": {"history": "mysql://x/y"}},
        Path(),
    )
    with pytest.raises(ConfigError, match="not supported"):
        open_history(cfg)
    with pytest.raises(ChsError, match=r"postgres:\*\*\*@127.0.0.1:1/") as err:
        PostgresHistory("postgresql://postgres:s3cret@127.0.0.1:1/nowhere")
    assert "s3cret" not in str(err.value)


@pytest.mark.postgres
def test_open_history_expands_environment_references(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHS_TEST_HISTORY_DB", pg_database.rsplit("/", 1)[1])
    cfg = parse_config(
        {
            "sources": {"accounts": {"uri": "a.csv"}},
            "output": {"history": "postgresql://postgres@127.0.0.1:5432/${CHS_TEST_HISTORY_DB}"},
        },
        Path(),
    )
    store = open_history(cfg)
    assert isinstance(store, PostgresHistory)
    store.close()


def _own_schema(pg_database: str) -> str:
    """Return the test database's URL with a fresh schema of its own as the search path."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_database, autocommit=True) as con:
        con.execute(f"create schema {schema}")
    return f"{pg_database}?options=-csearch_path%3D{schema}"


@pytest.mark.postgres
def test_postgres_reads_inside_a_write_transaction_see_its_rows(pg_database: str) -> None:
    """The writer's own reads see its uncommitted rows; every other read sees committed dates.

    Reads outside a write transaction go through ADBC on a second connection; inside one they
    stay on the transaction's connection, the only one that sees its rows.
    """
    url = _own_schema(pg_database)
    store, other = PostgresHistory(url), PostgresHistory(url)
    try:
        store.write_snapshot(snapshot(D1, "old"))
        assert store._reader is None  # writing (and the table set-up) read on psycopg only
        assert store.dates() == [D1]
        assert store._reader is not None  # a read outside a transaction: through ADBC
        seen_elsewhere: list[list[str]] = []
        with store._transaction(D1):
            store._execute("delete from score_history where as_of = ?", [D1])
            new = snapshot(D1, "new", accounts=5)
            store._insert("score_history", conform(new.scores, "score_history"))
            # this thread's reads are in the transaction: the new rows, not the old ones
            inside = store.scores_at(D1)
            assert inside["top_drivers"].to_list() == ["new"] * 5
            assert store.scores_between(D1, D1).height == 5
            assert store.dates() == [D1]
            # another connection, and another thread of this store, see the committed date
            assert other.scores_at(D1)["top_drivers"].to_list() == ["old"] * 3
            reader = threading.Thread(
                target=lambda: seen_elsewhere.append(store.scores_at(D1)["top_drivers"].to_list())
            )
            reader.start()
            reader.join(30)
        assert seen_elsewhere == [["old"] * 3]
        assert other.scores_at(D1)["top_drivers"].to_list() == ["new"] * 5  # committed
        assert_frame_equal(store.scores_at(D1), inside)
    finally:
        store.close()
        other.close()


@pytest.mark.postgres
def test_postgres_reads_through_adbc_equal_copy_to_csv(pg_database: str) -> None:
    """The ADBC reader and the transaction's COPY reader give the same frames and types."""
    store = PostgresHistory(_own_schema(pg_database))
    store.write_snapshot(snapshot(D1))
    store.write_snapshot(snapshot(D2, accounts=4))
    reads: dict[str, list[Any]] = {}
    for how in ("adbc", "copy"):
        ctx = store._own_transaction() if how == "copy" else contextlib.nullcontext()
        with ctx:
            reads[how] = [
                store.scores_between(D1, D2),
                store.measures_between(D1, D2),
                store.runs(),
                store.actions_before(D2),
                store.kpis_between(D1, D2),
                store.dates(),
            ]
    for adbc_read, copy_read in zip(reads["adbc"], reads["copy"], strict=True):
        if isinstance(adbc_read, pl.DataFrame):
            assert adbc_read.height > 0
            assert_frame_equal(adbc_read, copy_read)
        else:
            assert adbc_read == copy_read
    store.close()


def test_a_snapshots_scores_without_the_pivot_equal_the_pivot() -> None:
    cfg = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())
    names = [m.name for m in cfg.scoring.measures]
    n = 5
    scored = pl.DataFrame(
        {
            "account_id": [f"acc{i}" for i in (3, 1, 4, 0, 2)],  # not sorted
            "score": [40.0, None, 75.5, 10.0, 99.0],
            "segment": ["neutral", None, "healthy", "at_risk", "healthy"],
            "arr": [1.0, 2.0, 3.0, 4.0, 5.0],
            **{f"m_{m}": [float(i * j) for i in range(n)] for j, m in enumerate(names)},
            **{f"c_{m}": [i + j / 7 for i in range(n)] for j, m in enumerate(names)},
        }
    )
    snap = make_snapshot(cfg, D1, scored, pl.DataFrame(), {"as_of": D1.isoformat()}, {})  # type: ignore[typeddict-item]
    fast = snapshot_scores(snap)
    assert_frame_equal(fast, history_scores(snap.scores, snap.measures))
    assert fast.columns[-len(names) :] == [f"c_{m}" for m in names]


def _with_actions(snap: Snapshot, ids: list[str], opened_on: date) -> Snapshot:
    acts = pl.DataFrame(
        {
            "account_id": ["acc0"] * len(ids),
            "as_of": [snap.as_of] * len(ids),
            "action": [f"play {i}" for i in ids],
            "action_id": ids,
            "opened_on": [opened_on] * len(ids),
            "holdout": [False] * len(ids),
            "opened_score": [30.0] * len(ids),
            "opened_segment": ["at_risk"] * len(ids),
        }
    )
    snap.actions = acts
    return snap


def test_pass_history_reads_action_ids_and_openings_as_the_store_would(
    store: HistoryStore,
) -> None:
    """Before the pass's dates from the store once, then its own; equal to the store's answer.

    The pass re-runs D2 (already stored with other actions): the old D2's actions are gone,
    as they are from the store once the pass has written D2 again.
    """
    d3, d4 = D2 + timedelta(weeks=1), D2 + timedelta(weeks=2)
    store.write_snapshot(_with_actions(snapshot(D1), ["x1"], D1))
    store.write_snapshot(_with_actions(snapshot(D2), ["old2"], D2))
    view = PassHistory(store, span=(D2, d4))
    for d, ids in ((D2, ["y2"]), (d3, ["y2", "y3"])):
        snap = _with_actions(snapshot(d), ids, D2 if ids == ["y2"] else d)
        if d == d3:  # y2 carried, opened on D2; y3 opens on d3
            snap.actions = snap.actions.with_columns(
                pl.Series("opened_on", [D2, d3], dtype=pl.Date)
            )
        view.add(snap)
        store.write_snapshot(snap)
    assert view.action_ids_before(d4) == store.action_ids_before(d4) == {"x1", "y2", "y3"}
    got = view.action_openings(d4).sort("action_id")
    want = store.action_openings(d4).sort("action_id")
    assert got["action_id"].to_list() == want["action_id"].to_list() == ["x1", "y2", "y3"]
    assert_frame_equal(got, want, check_column_order=False)
