"""One-pass backfill: many-date features, per-date slices, equality with single runs, resuming."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import flows.passes as backfill_module
from flows.backfill import backfill_flow
from flows.params import BackfillParams, WeeklyParams
from flows.passes import chunked
from flows.weekly import weekly_flow
from tasks.backfill import SpanWindow, as_of_slice, dates_between
from tasks.config import Config, load_config, parse_config
from tasks.features.build import build_features, build_features_many, by_date
from tasks.history.connect import open_history
from tasks.schemas import DATASETS
from tasks.sources.plan import REASON, ROW
from tasks.sources.read import extract_dataset
from tasks.validate import CAST, ValidatedDataset
from tests.conftest import DEMO_END

CFG = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())
RUN_TIME = datetime(2026, 4, 1, 12)


def test_dates_between_steps_and_includes_the_end() -> None:
    assert dates_between(date(2026, 1, 1), date(2026, 1, 15), 7) == [
        date(2026, 1, 1),
        date(2026, 1, 8),
        date(2026, 1, 15),
    ]
    assert dates_between(date(2026, 1, 1), date(2026, 1, 14), 7)[-1] == date(2026, 1, 8)
    assert dates_between(date(2026, 1, 2), date(2026, 1, 1), 1) == []


def test_span_window_looks_back_from_the_first_date() -> None:
    w = SpanWindow(date(2026, 3, 31), RUN_TIME, first=date(2026, 1, 1))
    assert w.since(60) == datetime(2025, 11, 3)  # 60 days ending 1 January
    assert w.end == datetime(2026, 3, 31, 23, 59, 59, 999999)


def _accounts() -> pl.DataFrame:
    return pl.DataFrame(
        {"account_id": ["a", "b"], "name": ["A", "B"], "seats": [10, 10]},
    ).with_columns(
        pl.lit(None, pl.Date).alias("contract_start"),
        pl.Series("churned_at", [None, date(2026, 3, 20)], dtype=pl.Date),
        pl.lit("active").alias("status"),
        pl.lit(None, pl.Date).alias("renewal_date"),
    )


def test_many_dates_keep_each_window_apart() -> None:
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "account_id": ["a", "a", "b"],
            "ordered_at": [datetime(2025, 3, 1), datetime(2026, 3, 10), datetime(2026, 3, 12)],
            "amount": [100.0, 50.0, 70.0],
            "kind": ["order", "order", "order"],
        }
    )
    tickets = pl.DataFrame(
        {
            "ticket_id": ["t1"],
            "account_id": ["a"],
            "opened_at": [datetime(2026, 3, 5)],
            "resolved_at": [datetime(2026, 3, 20, 6)],
            "priority": ["urgent"],
        }
    )
    data = {"accounts": _accounts(), "orders": orders, "tickets": tickets}
    days = [date(2026, 3, 4), date(2026, 3, 11), date(2026, 3, 18), date(2026, 3, 25)]
    f = build_features_many(data, CFG, days)
    got = f.select("as_of", "account_id", "orders_365d", "spend_365d", "open_urgent_tickets").rows()
    assert got == [
        # a's only order by 4 March is a year old: out of the window, but a purchase history,
        # so its spend is 0 rather than unknown; b has never ordered
        (days[0], "a", 0, 0.0, 0),
        (days[0], "b", 0, None, 0),
        (days[1], "a", 1, 50.0, 1),  # the urgent ticket is open from 5 March
        (days[1], "b", 0, None, 0),
        (days[2], "a", 1, 50.0, 1),
        (days[2], "b", 1, 70.0, 0),
        (days[3], "a", 1, 50.0, 0),  # resolved on 20 March; b churned that day
    ]
    for d, part in by_date(f, days).items():
        assert_frame_equal(part, build_features(data, CFG, d))


@pytest.fixture(scope="module")
def demo_span(demo_template: Path) -> tuple[Config, dict[str, pl.DataFrame]]:
    """Every demo dataset read once for the last 20 weeks of the demo."""
    cfg = load_config(demo_template / "chs.toml")
    window = SpanWindow(DEMO_END, datetime(2030, 1, 1), first=DEMO_END - timedelta(weeks=20))
    data = {
        n: extract_dataset(n, cfg, window).drop(ROW, REASON) for n in DATASETS if n in cfg.sources
    }
    return cfg, data


def test_features_of_many_dates_equal_one_date_at_a_time(
    demo_span: tuple[Config, dict[str, pl.DataFrame]],
) -> None:
    cfg, data = demo_span
    days = dates_between(DEMO_END - timedelta(weeks=20), DEMO_END, 7)
    many = by_date(build_features_many(data, cfg, days), days)
    for d in days[:: len(days) // 4]:
        assert_frame_equal(many[d], build_features(data, cfg, d))


def test_as_of_slice_keeps_what_a_run_of_the_date_would_read() -> None:
    accepted = pl.DataFrame(
        {"order_id": ["o1", "o2"], "ordered_at": [datetime(2026, 3, 1), datetime(2026, 3, 20)]}
    )
    quarantined = pl.DataFrame(
        {
            "source_row": [3, 4, 5],
            "order_id": ["o3", "o4", "o5"],
            "ordered_at": [datetime(2026, 3, 2), None, datetime(2026, 5, 1)],
            "reason": [
                "amount: amount must not be negative",
                "ordered_at: 'yesterday' is not a date-time",
                "ordered_at: ordered_at after the run time is an impossible date",
            ],
        }
    )
    failed = [
        {"expectation": CAST, "column": "ordered_at", "count": 1, "reason": "values not a date"},
        {
            "expectation": "expect_column_values_to_be_between",
            "column": "amount",
            "count": 1,
            "reason": "amount must not be negative",
        },
        {
            "expectation": "expect_column_values_to_be_between",
            "column": "ordered_at",
            "count": 1,
            "reason": "ordered_at after the run time is an impossible date",
        },
    ]
    v = {"orders": ValidatedDataset("orders", accepted, quarantined, failed)}
    early = as_of_slice(v, date(2026, 3, 1), RUN_TIME, CFG)["orders"]
    assert early.accepted["order_id"].to_list() == ["o1"]
    # o3 is after the date; o4 has no time and o5 is after the run time: every date sees them
    assert early.quarantined["order_id"].to_list() == ["o4", "o5"]
    assert [(f["column"], f["count"]) for f in early.failed] == [("ordered_at", 1)] * 2
    late = as_of_slice(v, date(2026, 3, 31), RUN_TIME, CFG)["orders"]
    assert late.summary()["rows_read"] == 5
    assert [f["count"] for f in late.failed] == [1, 1, 1]


def _outputs(folder: Path) -> dict[str, object]:
    return {
        "scores": pl.read_parquet(folder / "scores.parquet"),
        "actions": pl.read_csv(folder / "actions.csv"),
        "kpis": json.loads((folder / "kpis.json").read_text()),
        "validation": json.loads((folder / "validation.json").read_text()),
    }


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_backfill_gives_the_same_results_as_single_runs(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 6 dates in passes of 4 and 2: each compared date comes from a different pass
    monkeypatch.setattr(backfill_module, "DATES_PER_PASS", 4)
    assert chunked(list(range(6)), 4) == [[0, 1, 2, 3], [4, 5]]  # type: ignore[arg-type]
    config = str(demo / "chs.toml")
    start = DEMO_END - timedelta(weeks=5)
    results = backfill_flow(
        BackfillParams(config_path=config, start=start, end=DEMO_END, every_days=7)
    )
    days = dates_between(start, DEMO_END, 7)
    assert [r.as_of for r in results] == days
    backfilled = {d: _outputs(demo / "out" / d.isoformat()) for d in days}
    # every date has its report (SPEC section 6); only the last its e-mails (emails="last")
    assert all((demo / "out" / d.isoformat() / "report.html").exists() for d in days)
    assert not list((demo / "out" / days[0].isoformat() / "outbox").glob("*.eml"))
    assert list((demo / "out" / days[-1].isoformat() / "outbox").glob("*.eml"))
    # the first date has no history before it; the last reads 1 and 4 weeks back from the pass
    for d in (days[0], days[-1]):
        weekly_flow(WeeklyParams(config_path=config, as_of=d))
        single = _outputs(demo / "out" / d.isoformat())
        assert_frame_equal(single["scores"], backfilled[d]["scores"])  # type: ignore[arg-type]
        assert_frame_equal(single["actions"], backfilled[d]["actions"])  # type: ignore[arg-type]
        assert single["kpis"] == backfilled[d]["kpis"]
        assert single["validation"] == backfilled[d]["validation"]
    last = backfilled[days[-1]]["scores"]
    assert isinstance(last, pl.DataFrame)
    assert last["score_delta_4w"].drop_nulls().len() > 0.9 * last.height


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_killed_backfill_resumes_without_duplicates(demo: Path) -> None:
    config = str(demo / "chs.toml")
    start, end = DEMO_END - timedelta(weeks=7), DEMO_END
    args = ["backfill", "--config", config, "--start", str(start), "--end", str(end)]
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)  # its own temporary server, killed with it
    log = demo / "killed.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            env=env,
            start_new_session=True,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    out = demo / "out"
    deadline = time.monotonic() + 180
    while (
        time.monotonic() < deadline
        and proc.poll() is None
        and len(list(out.glob("????-??-??"))) < 3
    ):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    published = sorted(p.name for p in out.glob("????-??-??"))
    tail = log.read_text(errors="replace")[-3000:]
    assert 3 <= len(published) < 8, f"the backfill was not killed half-way:\n{tail}"

    results = backfill_flow(BackfillParams(config_path=config, start=start, end=end, every_days=7))
    days = dates_between(start, end, 7)
    assert len(results) < len(days)  # dates the killed run finished are not done again
    assert sorted(p.name for p in out.glob("????-??-??")) == [d.isoformat() for d in days]
    con = duckdb.connect(str(out / "history.duckdb"), read_only=True)
    per_date = con.execute(
        "select as_of, count(*), count(distinct account_id) from score_history group by as_of"
    ).fetchall()
    runs = con.execute("select as_of, count(*) from run_history group by as_of").fetchall()
    con.close()
    assert sorted(d for d, _, _ in per_date) == days
    assert all(n == distinct for _, n, distinct in per_date)
    assert all(n == 1 for _, n in runs)
    for d, n, _ in per_date:
        assert pl.read_parquet(out / d.isoformat() / "scores.parquet").height == n


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_harness")
def test_backfill_into_postgres_stores_in_the_background_like_duckdb(
    demo: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A date is stored on a task thread while the next reads history, in PostgreSQL too.

    With the history in a real PostgreSQL the stored dates equal those of the DuckDB store,
    each stored once.
    """
    monkeypatch.setattr(backfill_module, "DATES_PER_PASS", 2)
    text = (demo / "chs.toml").read_text(encoding="utf-8")
    pg = re.sub(r'(?m)^history = ".*"$', f'history = "{pg_database}"', text)
    pg = re.sub(r'(?m)^dir = ".*"$', 'dir = "out-pg"', pg)
    (demo / "chs-pg.toml").write_text(pg, encoding="utf-8")
    days = dates_between(DEMO_END - timedelta(weeks=5), DEMO_END, 7)
    stored = {}
    for name in ("chs.toml", "chs-pg.toml"):
        config = str(demo / name)
        # two dates first: the later dates then read 1 and 4 weeks back from the store while
        # the date before them is being written
        for start, end in ((days[0], days[1]), (days[2], days[-1])):
            backfill_flow(BackfillParams(config_path=config, start=start, end=end, every_days=7))
        store = open_history(load_config(Path(config)))
        try:
            assert store.runs()["as_of"].to_list() == days
            stored[name] = store.scores_between(days[0], days[-1])
        finally:
            store.close()
    duck, post = stored["chs.toml"], stored["chs-pg.toml"]
    assert duck["as_of"].unique().sort().to_list() == days
    assert_frame_equal(duck, post, check_dtypes=False)
