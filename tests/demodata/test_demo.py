"""Tests for the demo data generator (demodata/)."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from demodata.generate import generate_demo
from tasks.schemas import DATASETS, DEFAULT_SCALES

N = 200
END = date(2025, 6, 15)
START = datetime(2024, 4, 1)  # 15 calendar months ending in June 2025
END_TS = datetime(2025, 6, 15, 23, 59, 59)
MONTHS = [
    f"{y}-{m:02d}" for y, m in [(2024, m) for m in range(4, 13)] + [(2025, m) for m in range(1, 7)]
]
SURVEY_HEADERS = [
    "Response ID",
    "Account",
    "Survey Type",
    "Score",
    "Submitted",
    "Respondent",
    "Comment",
]
SURVEY_RENAME = dict(zip(SURVEY_HEADERS, DATASETS["survey_responses"].schema.names(), strict=True))
OUTCOMES_RAW = DATASETS["outcomes"].schema | {"measured_at": pl.String}
TIME_COLUMNS = {
    "orders": ["ordered_at"],
    "tickets": ["opened_at", "resolved_at"],
    "survey_responses": ["submitted_at"],
    "usage_events": ["ts"],
    "outcomes": ["measured_at"],
    "feedback": ["created_at"],
}


def _load(root: Path) -> dict[str, pl.DataFrame]:
    """Read every generated file back into canonical frames."""
    con = duckdb.connect(str(root / "crm.duckdb"), read_only=True)
    try:
        frames = {t: con.sql(f"SELECT * FROM {t}").pl() for t in ("accounts", "orders", "tickets")}
    finally:
        con.close()
    surveys = pl.concat(
        [
            pl.read_csv(root / "surveys" / f"{k}.csv", infer_schema=False)
            for k in ("nps", "csat", "ces")
        ]
    )
    frames["survey_responses"] = surveys.rename(SURVEY_RENAME).with_columns(
        pl.col("score").cast(pl.Float64),
        pl.col("submitted_at").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=True),
    )
    events = pl.read_parquet(sorted((root / "analytics").glob("events-*.parquet")))
    frames["usage_events"] = events
    path = root / "outcomes.jsonl"
    outcomes = pl.read_ndjson(path) if path.stat().st_size else pl.DataFrame(schema=OUTCOMES_RAW)
    frames["outcomes"] = outcomes.with_columns(
        pl.col("measured_at").str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us", strict=True)
    )
    frames["feedback"] = pl.read_csv(root / "feedback.csv", infer_schema=False).with_columns(
        pl.col("created_at").str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us", strict=True),
        pl.col("rating").cast(pl.Float64),
    )
    return frames


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Generate the demo data once for the module."""
    root = tmp_path_factory.mktemp("demo")
    return root, generate_demo(root, N, seed=11, end=END)


@pytest.fixture(scope="module")
def data(run: tuple[Path, dict[str, int]]) -> dict[str, pl.DataFrame]:
    """Return the generated data as canonical frames."""
    return _load(run[0])


@pytest.fixture(scope="module")
def accounts(data: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Return the accounts table."""
    return data["accounts"]


def _account_years(accounts: pl.DataFrame) -> float:
    """Return the time accounts were customers inside the window, in years."""
    first = pl.max_horizontal(pl.col("contract_start"), pl.lit(START.date()))
    last = pl.col("churned_at").fill_null(END + timedelta(days=1))
    days = accounts.select(((last - first).dt.total_days()).clip(0).sum()).item()
    return days / 365.25


def test_files_and_counts(run: tuple[Path, dict[str, int]], data: dict[str, pl.DataFrame]) -> None:
    root, counts = run
    assert (root / "crm.duckdb").is_file()
    assert sorted(p.name for p in (root / "analytics").iterdir()) == [
        f"events-{m}.parquet" for m in MONTHS
    ]
    assert counts == {name: frame.height for name, frame in data.items()}
    assert counts["accounts"] == N


def test_crm_tables_have_canonical_types(run: tuple[Path, dict[str, int]]) -> None:
    con = duckdb.connect(str(run[0] / "crm.duckdb"), read_only=True)
    try:
        for table in ("accounts", "orders", "tickets"):
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            schema = DATASETS[table].schema
            assert list(types)[: len(schema)] == schema.names()
            for name, dtype in schema.items():
                expected = {pl.Date: "DATE", pl.String: "VARCHAR", pl.Int64: "BIGINT"}.get(
                    dtype, "TIMESTAMP" if dtype == pl.Datetime("us") else "DOUBLE"
                )
                assert types[name] == expected, (table, name)
        assert con.execute("SELECT DISTINCT plan FROM accounts ORDER BY 1").fetchall() == [
            ("growth",),
            ("scale",),
            ("starter",),
        ]
    finally:
        con.close()


def test_frames_cast_to_canonical_schemas(data: dict[str, pl.DataFrame]) -> None:
    for name, frame in data.items():
        schema = DATASETS[name].schema
        cast = frame.select(schema.names()).cast(dict(schema), strict=True)
        assert cast.schema == schema
        assert cast.select(DATASETS[name].required).null_count().sum_horizontal().item() == 0
    assert "properties" in data["usage_events"].columns


def test_survey_exports_use_tool_headers(run: tuple[Path, dict[str, int]]) -> None:
    texts = []
    for kind in ("nps", "csat", "ces"):
        path = run[0] / "surveys" / f"{kind}.csv"
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(text.splitlines()))
        assert rows[0] == SURVEY_HEADERS
        assert {r[2] for r in rows[1:]} == {kind}
        texts.append(text)
    comments = [r[6] for t in texts for r in csv.reader(t.splitlines())]
    assert any("," in c for c in comments)
    assert any('"' in c for c in comments)
    assert any(not c.isascii() for c in comments)


def test_outcomes_are_quarterly_json_lines(
    run: tuple[Path, dict[str, int]], data: dict[str, pl.DataFrame]
) -> None:
    first = json.loads((run[0] / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert list(first) == ["account_id", "goal", "target", "actual", "measured_at"]
    outcomes = data["outcomes"]
    assert set(outcomes["measured_at"].dt.date().unique()) <= {
        date(2024, 6, 30),
        date(2024, 9, 30),
        date(2024, 12, 31),
        date(2025, 3, 31),
    }
    share = outcomes["account_id"].n_unique() / N
    assert 0.45 <= share <= 0.75
    assert (outcomes["target"] > 0).all()
    assert (outcomes["actual"] >= 0).all()


def test_counts_roughly_as_specified(data: dict[str, pl.DataFrame], accounts: pl.DataFrame) -> None:
    years = _account_years(accounts)
    assert 150 * N <= data["usage_events"].height <= 250 * N
    orders = data["orders"]
    assert 10 <= orders.height / years <= 15
    refunds = orders.filter(pl.col("kind") == "refund").height / orders.height
    assert 0.005 <= refunds <= 0.04
    assert 3.5 <= data["tickets"].height / years <= 7.5
    assert 1.3 <= data["survey_responses"].height / years <= 3.0


def test_nothing_outside_the_window(data: dict[str, pl.DataFrame], accounts: pl.DataFrame) -> None:
    for name, columns in TIME_COLUMNS.items():
        for column in columns:
            values = data[name][column].drop_nulls()
            assert values.max() <= END_TS, (name, column)
            assert values.min() >= START, (name, column)
    assert accounts["contract_start"].max() <= END
    assert accounts["churned_at"].drop_nulls().max() <= END


def test_ids_unique_and_formatted(data: dict[str, pl.DataFrame]) -> None:
    patterns = {
        "accounts": ("account_id", r"^A\d{5}$"),
        "orders": ("order_id", r"^O\d{7}$"),
        "tickets": ("ticket_id", r"^T\d{7}$"),
        "survey_responses": ("response_id", r"^R\d{7}$"),
    }
    for name, (column, pattern) in patterns.items():
        ids = data[name][column]
        assert ids.n_unique() == ids.len(), name
        assert ids.str.contains(pattern).all(), name
    users = pl.concat([data["usage_events"]["user_id"], data["survey_responses"]["respondent_id"]])
    assert users.str.contains(r"^A\d{5}-U\d{3,}$").all()


def test_every_account_id_exists(data: dict[str, pl.DataFrame], accounts: pl.DataFrame) -> None:
    known = set(accounts["account_id"])
    for name, frame in data.items():
        assert set(frame["account_id"]) <= known, name
    events = data["usage_events"]
    assert (events["user_id"].str.split("-U").list.first() == events["account_id"]).all()


def test_users_fit_into_seats(data: dict[str, pl.DataFrame], accounts: pl.DataFrame) -> None:
    users = (
        data["usage_events"]
        .group_by("account_id")
        .agg(pl.col("user_id").n_unique().alias("users"))
        .join(accounts, on="account_id")
    )
    assert (users["users"] <= users["seats"]).all()


def test_accounts_look_like_a_crm(accounts: pl.DataFrame) -> None:
    tiers = accounts["tier"].value_counts(normalize=True)
    share = dict(zip(tiers["tier"], tiers["proportion"], strict=True))
    assert 0.04 <= share["enterprise"] <= 0.18
    assert 0.45 <= share["smb"] <= 0.75
    seats = accounts.group_by("tier").agg(pl.col("seats").min().alias("lo"), pl.col("seats").max())
    ranges = {"smb": (5, 50), "mid-market": (50, 300), "enterprise": (300, 3000)}
    for tier, lo, hi in seats.iter_rows():
        assert ranges[tier][0] <= lo
        assert hi <= ranges[tier][1]
    mean_arr = accounts.group_by("tier").agg(pl.col("arr").mean())
    arr = dict(zip(mean_arr["tier"], mean_arr["arr"], strict=True))
    assert arr["enterprise"] > arr["mid-market"] > arr["smb"] > 0
    assert accounts["csm_email"].drop_nulls().str.ends_with("@example.com").all()
    assert accounts["csm_email"].drop_nulls().n_unique() <= 12
    assert set(accounts["region"]) <= {"EMEA", "NA", "APAC", "LATAM"}
    names = accounts["name"]
    assert names.str.contains("&").any()
    assert names.str.contains("'").any()
    assert (~names.map_elements(str.isascii, return_dtype=pl.Boolean)).any()
    assert (accounts["contract_start"] >= START.date()).any()  # some new customers


def test_churn_status_and_renewals(accounts: pl.DataFrame) -> None:
    churned = accounts.filter(pl.col("status") == "churned")
    active = accounts.filter(pl.col("status") == "active")
    assert churned.height + active.height == N
    assert 0.06 <= churned.height / N <= 0.17
    assert churned["churned_at"].null_count() == 0
    assert active["churned_at"].null_count() == active.height
    quarters = churned["churned_at"].dt.truncate("1q").n_unique()
    assert quarters >= 4  # positives in every quarter of a back-test
    assert (active["renewal_date"] > END).all()
    assert (churned["renewal_date"] >= churned["churned_at"]).all()
    assert (accounts["renewal_date"] > accounts["contract_start"]).all()


def test_no_activity_outside_the_contract(
    data: dict[str, pl.DataFrame], accounts: pl.DataFrame
) -> None:
    bounds = accounts.select(
        "account_id",
        start=pl.col("contract_start").cast(pl.Datetime("us")),
        stop=pl.col("churned_at").cast(pl.Datetime("us")),
    )
    for name, columns in TIME_COLUMNS.items():
        frame = data[name].join(bounds, on="account_id")
        for column in columns:
            late = frame.filter(pl.col(column) >= pl.col("stop")).height
            early = frame.filter(pl.col(column) < pl.col("start")).height
            assert late == 0, (name, column)
            assert early == 0, (name, column)


def test_deterministic_for_a_seed(
    tmp_path: Path, run: tuple[Path, dict[str, int]], data: dict[str, pl.DataFrame]
) -> None:
    again = _load(tmp_path) if generate_demo(tmp_path, N, seed=11, end=END) else {}
    for name, frame in data.items():
        assert again[name].equals(frame), name
    other = tmp_path / "other"
    generate_demo(other, N, seed=12, end=END)
    assert not _load(other)["usage_events"].equals(data["usage_events"])


def test_survey_scores_within_scales(data: dict[str, pl.DataFrame]) -> None:
    surveys = data["survey_responses"]
    for kind, (lo, hi) in DEFAULT_SCALES.items():
        scores = surveys.filter(pl.col("survey") == kind)["score"]
        assert scores.len() > 0
        assert lo <= scores.min()
        assert scores.max() <= hi
        assert (scores == scores.round()).all()
    repeat = surveys.group_by("respondent_id").len()
    assert (repeat["len"] > 1).any()


def test_tickets_are_consistent(data: dict[str, pl.DataFrame]) -> None:
    tickets = data["tickets"]
    assert set(tickets["priority"]) == {"low", "normal", "high", "urgent"}
    open_ = tickets.filter(pl.col("status") == "open")
    resolved = tickets.filter(pl.col("status") == "resolved")
    assert open_.height + resolved.height == tickets.height
    assert open_["resolved_at"].null_count() == open_.height
    assert open_["satisfaction"].null_count() == open_.height
    assert resolved["resolved_at"].null_count() == 0
    assert (resolved["resolved_at"] > resolved["opened_at"]).all()
    rated = resolved["satisfaction"].drop_nulls()
    assert 0.3 <= rated.len() / resolved.height <= 0.7
    assert rated.min() >= 1
    assert rated.max() <= 5
    recent = open_.filter(pl.col("opened_at") >= END_TS - timedelta(days=45)).height
    assert recent >= 0.6 * open_.height


def test_events_sorted_within_monthly_files(run: tuple[Path, dict[str, int]]) -> None:
    names = set()
    for path in (run[0] / "analytics").glob("events-*.parquet"):
        events = pl.read_parquet(path)
        assert events["ts"].is_sorted()
        assert set(events["ts"].dt.strftime("%Y-%m")) == {path.stem.removeprefix("events-")}
        names |= set(events["event"])
    assert len(names) == 8
    assert "login" in names
    assert "api_call" in names


def test_events_are_weekday_heavy(data: dict[str, pl.DataFrame]) -> None:
    weekend = (data["usage_events"]["ts"].dt.weekday() >= 6).mean()
    assert weekend < 0.15


def test_planted_signal(data: dict[str, pl.DataFrame], accounts: pl.DataFrame) -> None:
    status = accounts.select("account_id", "status", "churned_at")
    nps = data["survey_responses"].filter(pl.col("survey") == "nps").join(status, on="account_id")
    mean = dict(nps.group_by("status").agg(pl.col("score").mean()).iter_rows())
    assert mean["churned"] < mean["active"] - 0.5
    # Usage fades before churn: for the typical churned account the last month is quieter
    # than months 3-6 before it (per account: a few large accounts would dominate a total).
    events = data["usage_events"].join(status.drop_nulls(), on="account_id")
    before = (pl.col("churned_at").cast(pl.Datetime("us")) - pl.col("ts")).dt.total_days()
    rates = events.group_by("account_id").agg(
        ((before < 30).sum() / 30).alias("last"),
        (before.is_between(90, 179).sum() / 90).alias("earlier"),
    )
    ratio = rates.filter(pl.col("earlier") > 0).select(pl.col("last") / pl.col("earlier"))
    assert ratio.to_series().median() < 0.6
    # Some accounts never show up in analytics or surveys (coverage below 1).
    assert data["usage_events"]["account_id"].n_unique() < N
    assert data["survey_responses"]["account_id"].n_unique() < N


def test_small_runs_and_rerun_overwrite(tmp_path: Path) -> None:
    first = generate_demo(tmp_path, 3, seed=1, end=date(2025, 1, 31), months=3)
    assert first["accounts"] == 3
    second = generate_demo(tmp_path, 5, end=date(2025, 1, 10), months=1, events_per_account=0)
    assert second["usage_events"] == 0
    assert [p.name for p in (tmp_path / "analytics").iterdir()] == ["events-2025-01.parquet"]
    assert _load(tmp_path)["accounts"].height == 5
    with pytest.raises(ValueError, match="positive"):
        generate_demo(tmp_path, 0, end=END)
