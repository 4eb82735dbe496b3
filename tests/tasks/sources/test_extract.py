"""Every file and embedded database source kind, push-down, mapping, and clear errors."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.config import Config, parse_config
from tasks.errors import ConfigError, SourceError
from tasks.schemas import DATASETS
from tasks.sources.databases import select_sql
from tasks.sources.plan import REASON, ROW, ReadPlan, Window, plan_read
from tasks.sources.read import extract_dataset, read_source

WINDOW = Window(date(2026, 3, 31), datetime(2026, 4, 1, 12))
ORDERS_HEADER = "order_id,account_id,ordered_at,amount"


def _cfg(tmp: Path, dataset: str = "orders", **src: Any) -> Config:
    sources: dict[str, Any] = {"accounts": {"uri": "x.csv"}, dataset: src}
    return parse_config({"sources": sources}, tmp)


def _orders_csv(tmp: Path, text: str, encoding: str = "utf-8", name: str = "orders.csv") -> None:
    (tmp / name).write_bytes(text.encode(encoding))


def _extract(tmp: Path, dataset: str = "orders", window: Window = WINDOW, **src: Any) -> Any:
    return extract_dataset(dataset, _cfg(tmp, dataset, **src), window)


def test_csv_with_bom_mapping_and_cast_failures(tmp_path: Path) -> None:
    _orders_csv(
        tmp_path,
        "\ufeffId;Acct;When;Total\nO1;a;2026-03-01 10:00:00;10.5\nO2;a;2026-03-02;abc\nO3;b;2026-04-01 08:00;1\nO4;b;2026-09-01;1\n",
    )
    df = _extract(
        tmp_path,
        uri="orders.csv",
        separator=";",
        columns={"order_id": "Id", "account_id": "Acct", "ordered_at": "When", "amount": "Total"},
    )
    # O3 is after the as-of date: it does not exist for this run. O4 is after the run time:
    # an impossible date, kept so that validation quarantines it.
    assert df["order_id"].to_list() == ["O1", "O2", "O4"]
    assert df["amount"].to_list() == [10.5, None, 1.0]
    assert df[REASON].to_list() == [None, "amount: 'abc' is not a number", None]
    assert df["ordered_at"].to_list() == [
        datetime(2026, 3, 1, 10),
        datetime(2026, 3, 2),
        datetime(2026, 9, 1),
    ]
    assert df[ROW].to_list() == [1, 2, 4]  # positions in the file, kept for quarantine files


@pytest.mark.parametrize("encoding", ["cp1251", "latin-1"])
def test_legacy_encodings(tmp_path: Path, encoding: str) -> None:
    name = "ООО Ромашка" if encoding == "cp1251" else "Müller Straße"
    _orders_csv(tmp_path, f"{ORDERS_HEADER},currency\nO1,a,2026-03-01,1,{name}\n", encoding)
    df = _extract(tmp_path, uri="orders.csv", encoding=encoding)
    assert df["currency"].to_list() == [name]


def test_wrong_encoding_is_one_sentence(tmp_path: Path) -> None:
    _orders_csv(tmp_path, f"{ORDERS_HEADER},currency\nO1,a,2026-03-01,1,Müller\n", "latin-1")
    with pytest.raises(SourceError, match="not valid utf-8"):
        _extract(tmp_path, uri="orders.csv")


def test_glob_of_parquet_and_jsonl(tmp_path: Path) -> None:
    for i in (1, 2):
        pl.DataFrame(
            {
                "order_id": [f"O{i}"],
                "account_id": ["a"],
                "ordered_at": [datetime(2026, 3, i)],
                "amount": [float(i)],
            }
        ).write_parquet(tmp_path / f"o{i}.parquet")
    df = _extract(tmp_path, uri="o*.parquet")
    assert sorted(df["order_id"].to_list()) == ["O1", "O2"]
    (tmp_path / "o.jsonl").write_text(
        '{"order_id": "J1", "account_id": "a", "ordered_at": "2026-03-01T00:00:00", "amount": 3}\n'
    )
    df = _extract(tmp_path, uri="o.jsonl")
    assert df["amount"].to_list() == [3.0]


def test_duckdb_and_sqlite_table_and_query(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "crm.duckdb"))
    con.execute(
        "create table orders as select 'O1' as order_id, 'a' as account_id, timestamp '2026-03-01' as ordered_at, 5.0 as amount"
    )
    con.close()
    lite = sqlite3.connect(tmp_path / "crm.sqlite")
    lite.execute("create table o (id text, acct text, ts text, amt real)")
    lite.execute(
        "insert into o values ('S1', 'a', '2026-03-01 08:00:00', 7.5), ('S2', 'b', '2026-03-02', 1)"
    )
    lite.commit()
    lite.close()
    d = _extract(tmp_path, uri="duckdb:///crm.duckdb", table="orders")
    assert d["amount"].to_list() == [5.0]
    s = _extract(
        tmp_path,
        uri="sqlite:///crm.sqlite",
        query="select id as order_id, acct as account_id, ts as ordered_at, amt as amount from o where acct = 'a';",
    )
    assert s["order_id"].to_list() == ["S1"]
    assert s["ordered_at"].to_list() == [datetime(2026, 3, 1, 8)]


def test_every_source_kind_yields_the_canonical_schema(tmp_path: Path) -> None:
    _orders_csv(tmp_path, f"{ORDERS_HEADER}\nO1,a,2026-03-01,1\n")
    frame = pl.read_csv(tmp_path / "orders.csv", try_parse_dates=True)
    frame.write_parquet(tmp_path / "orders.parquet")
    frame.write_ndjson(tmp_path / "orders.jsonl")
    con = duckdb.connect(str(tmp_path / "crm.duckdb"))
    con.execute("create table orders as select * from frame")
    con.close()
    expected = {ROW: pl.Int64, **dict(DATASETS["orders"].schema), REASON: pl.String}
    for uri in ("orders.csv", "orders.parquet", "orders.jsonl", "duckdb:///crm.duckdb"):
        df = _extract(tmp_path, uri=uri)
        assert dict(df.schema) == expected, uri
        assert df["ordered_at"].to_list() == [datetime(2026, 3, 1)], uri


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ({"uri": "missing.csv"}, r"orders source missing.csv: file .*missing.csv does not exist"),
        ({"uri": "nothing-*.csv"}, r"orders source nothing-\*.csv: no file matches .*nothing-"),
        ({"uri": "duckdb:///nope.duckdb", "table": "orders"}, "does not exist"),
        ({"uri": "orders.csv"}, "has no column 'amount', which the orders dataset requires"),
        (
            {"uri": "orders.csv", "columns": {"amount": "Total"}},
            "has no column 'Total' \\(named in its column mapping\\)",
        ),
    ],
)
def test_source_errors_are_one_sentence(tmp_path: Path, src: dict[str, Any], message: str) -> None:
    _orders_csv(tmp_path, "order_id,account_id,ordered_at\nO1,a,2026-03-01\n")
    with pytest.raises(SourceError, match=message):
        _extract(tmp_path, **src)


def test_broken_csv_and_jsonl_name_the_line(tmp_path: Path) -> None:
    _orders_csv(tmp_path, f"{ORDERS_HEADER}\nO1,a,2026-03-01,1\nO2,a,2026-03-01,1,50\n")
    with pytest.raises(SourceError, match="line 3 of orders.csv has 5 fields but the header has 4"):
        _extract(tmp_path, uri="orders.csv")
    (tmp_path / "o.jsonl").write_text('{"order_id": "J1"}\n{"order_id": \n')
    with pytest.raises(SourceError, match="line 2 of o.jsonl is not a JSON object"):
        _extract(tmp_path, uri="o.jsonl")


# --- push-down: read only what a run needs -----------------------------------------------

EVENTS = pl.DataFrame(
    {
        "account_id": ["a"] * 5,
        "user_id": ["u"] * 5,
        "event": ["login"] * 5,
        "ts": [
            datetime(2025, 6, 1),  # long before the 60-day look-back: not read
            datetime(2026, 2, 1),  # inside it
            datetime(2026, 3, 31, 23),  # the last hour of the as-of date
            datetime(2026, 6, 1),  # after the as-of date, before the run time: not read
            datetime(2206, 1, 1),  # after the run time: impossible, read for quarantine
        ],
        "plan": ["x"] * 5,  # not a canonical column: not read
    }
)
BACKFILL = Window(date(2026, 3, 31), datetime(2026, 11, 1))


def test_plan_has_a_day_of_margin_and_no_upper_bound_for_today(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "usage_events", uri="e.parquet", columns={"ts": "When"})
    plan = plan_read("usage_events", cfg, BACKFILL)
    assert plan == ReadPlan(
        columns=("account_id", "user_id", "event", "When"),
        time_column="When",
        start=datetime(2026, 1, 30),  # 60 days back from 2026-03-31, minus a day of margin
        end=datetime(2026, 4, 1, 23, 59, 59, 999999),
        keep_after=datetime(2026, 10, 31),
    )
    today = plan_read("usage_events", cfg, WINDOW)  # the run time is the next day
    assert (today.end, today.keep_after) == (None, None)
    assert plan_read("accounts", cfg, WINDOW) == ReadPlan()  # custom attributes: every column


def test_select_sql_per_dialect() -> None:
    plan = ReadPlan(
        ("ts", "a"), "ts", datetime(2026, 1, 30), datetime(2026, 4, 1), datetime(2026, 10, 31)
    )
    temporal = select_sql(
        "select * from ev", {"a": "text", "b": "text", "ts": "temporal"}, plan, "duckdb"
    )
    assert temporal == (
        'select "a", "ts" from (select * from ev) as src where ("ts" is null or '
        "((\"ts\" <= timestamp '2026-04-01 00:00:00' or \"ts\" > timestamp '2026-10-31 00:00:00') "
        "and \"ts\" >= timestamp '2026-01-30 00:00:00'))"
    )
    # text timestamps compare as text when they start with an ISO date; others are all kept
    text = select_sql("select * from ev", {"ts": "text"}, plan, "postgres")
    assert text.endswith(
        'where ("ts" is null or "ts" !~ \'^[0-9]{4}-[0-9]{2}-[0-9]{2}\' or '
        '(("ts" collate "C" < \'2026-04-02\' or "ts" collate "C" >= \'2026-10-31\') '
        'and "ts" collate "C" >= \'2026-01-30\'))'
    )
    other = select_sql("select * from ev", {"ts": "other"}, plan, "sqlite")
    assert other == 'select "ts" from (select * from ev) as src'


def test_duckdb_never_evaluates_rows_outside_the_window(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    con.execute("create table ev as select * from EVENTS")
    con.close()
    # error() fires for any row the database evaluates before the window starts
    query = (
        "select account_id, user_id, ts, plan, case when ts < timestamp '2026-01-01' "
        "then error('read a row outside the window') else event end as event from ev"
    )
    df = _extract(tmp_path, "usage_events", BACKFILL, uri="duckdb:///a.duckdb", query=query)
    assert df["ts"].to_list() == [
        datetime(2026, 2, 1),
        datetime(2026, 3, 31, 23),
        datetime(2206, 1, 1),
    ]


@pytest.mark.parametrize("kind", ["duckdb", "sqlite", "parquet"])
def test_sources_return_only_the_needed_rows_and_columns(tmp_path: Path, kind: str) -> None:
    if kind == "duckdb":
        con = duckdb.connect(str(tmp_path / "a.duckdb"))
        con.execute("create table usage_events as select * from EVENTS")
        con.close()
        uri = "duckdb:///a.duckdb"
    elif kind == "sqlite":
        lite = sqlite3.connect(tmp_path / "a.db")
        lite.execute("create table usage_events (account_id, user_id, event, ts, plan)")
        rows = EVENTS.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S")).rows()
        lite.executemany("insert into usage_events values (?, ?, ?, ?, ?)", rows)
        lite.execute("insert into usage_events values ('a', 'u', 'login', '03/01/2026', 'x')")
        lite.commit()
        lite.close()
        uri = "sqlite:///a.db"
    else:
        EVENTS.write_parquet(tmp_path / "e.parquet")
        uri = "e.parquet"
    cfg = _cfg(tmp_path, "usage_events", uri=uri)
    raw = read_source(
        "usage_events", cfg.sources["usage_events"], cfg, plan_read("usage_events", cfg, BACKFILL)
    )
    assert "plan" not in raw.columns
    kept = [str(v)[:10] for v in raw["ts"].to_list()]
    # SQLite keeps the text it cannot compare (03/01/2026); the cast quarantines it later
    extra = ["03/01/2026"] if kind == "sqlite" else []
    assert kept == ["2026-02-01", "2026-03-31", "2206-01-01", *extra]
    if kind == "parquet":
        assert raw[ROW].to_list() == [2, 3, 5]  # positions in the file, not in what was read


# --- mapping: formats, time zones, value maps ------------------------------------------


def test_timezone_converts_naive_local_times_to_utc(tmp_path: Path) -> None:
    _orders_csv(
        tmp_path,
        f"{ORDERS_HEADER}\n"
        "O1,a,2026-01-15 12:00,1\n"  # winter: UTC+1
        "O2,a,2026-07-15 12:00,1\n"  # summer: UTC+2
        "O3,a,2026-03-29 02:30,1\n"  # in the spring-forward gap: does not exist
        "O4,a,2026-07-15T12:00:00Z,1\n"  # an explicit offset wins over the source's zone
        "O5,a,2026-07-15T12:00:00+05:30,1\n",
    )
    year = Window(date(2026, 12, 31), datetime(2027, 1, 1))
    df = extract_dataset("orders", _cfg(tmp_path, uri="orders.csv", timezone="Europe/Berlin"), year)
    assert df["ordered_at"].to_list() == [
        datetime(2026, 1, 15, 11),
        datetime(2026, 7, 15, 10),
        None,
        datetime(2026, 7, 15, 12),
        datetime(2026, 7, 15, 6, 30),
    ]
    assert (
        df[REASON][2]
        == "ordered_at: '2026-03-29 02:30' is not a date-time (YYYY-MM-DD[ HH:MM[:SS]])"
    )


def test_formats_lists_and_unix_seconds(tmp_path: Path) -> None:
    _orders_csv(
        tmp_path,
        f"{ORDERS_HEADER}\nO1,a,01.03.2026 10:15,1\nO2,a,02.03.2026,1\nO3,a,2026-03-03,1\n",
    )
    df = _extract(tmp_path, uri="orders.csv", datetime_format=["%d.%m.%Y %H:%M", "%d.%m.%Y"])
    assert df["ordered_at"].to_list() == [datetime(2026, 3, 1, 10, 15), datetime(2026, 3, 2), None]
    assert df[REASON][2] == "ordered_at: '2026-03-03' is not a date-time in datetime_format"
    # a number is not a date unless the format says Unix seconds
    pl.DataFrame(
        {"order_id": ["E1"], "account_id": ["a"], "ordered_at": [1772323200], "amount": [1]}
    ).write_parquet(tmp_path / "epoch.parquet")
    assert _extract(tmp_path, uri="epoch.parquet")[REASON].to_list() == [
        "ordered_at: '1772323200' is not a date-time (YYYY-MM-DD[ HH:MM[:SS]])"
    ]
    epoch = _extract(tmp_path, uri="epoch.parquet", datetime_format="%s")
    assert epoch["ordered_at"].to_list() == [datetime(2026, 3, 1)]


def test_date_format_and_value_maps(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        "Id,Name,Since,State,Seats\nA1,Acme,31/01/2025,Customer,10\nA2,Beta,2025-01-31, Former ,2.5\n"
    )
    df = extract_dataset(
        "accounts",
        parse_config(
            {
                "sources": {
                    "accounts": {
                        "uri": "a.csv",
                        "date_format": "%d/%m/%Y",
                        "columns": {
                            "account_id": "Id",
                            "name": "Name",
                            "contract_start": "Since",
                            "status": "State",
                            "seats": "Seats",
                        },
                        "values": {"status": {"Customer": "active", "Former": "churned"}},
                    }
                }
            },
            tmp_path,
        ),
        WINDOW,
    )
    assert df["contract_start"].to_list() == [date(2025, 1, 31), None]
    assert df["status"].to_list() == ["active", "churned"]  # mapped after trimming spaces
    assert df["seats"].to_list() == [10, None]
    assert df[REASON][1] == (
        "seats: '2.5' is not a whole number; contract_start: '2025-01-31' is not a date in date_format"
    )


def test_timezone_aware_parquet_is_converted_not_relabelled(tmp_path: Path) -> None:
    pl.DataFrame(
        {
            "order_id": ["P1"],
            "account_id": ["a"],
            "ordered_at": [datetime(2026, 3, 1, 12)],
            "amount": [1.0],
        }
    ).with_columns(pl.col("ordered_at").dt.replace_time_zone("America/New_York")).write_parquet(
        tmp_path / "o.parquet"
    )
    # 12:00 in New York is 17:00 UTC; the source's timezone key only applies to naive times
    df = _extract(tmp_path, uri="o.parquet", timezone="Asia/Tokyo")
    assert df["ordered_at"].to_list() == [datetime(2026, 3, 1, 17)]


@pytest.mark.parametrize(
    ("src", "message"),
    [
        (
            {"uri": "o.csv", "encoding": "klingon"},
            "sources.orders.encoding: unknown encoding 'klingon'",
        ),
        ({"uri": "o.csv", "timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"uri": "o.csv", "table": "t", "query": "select 1"}, "give either table or query"),
        (
            {"uri": "o.csv", "password_env": "X"},
            "password_env and password_secret apply to postgresql",
        ),
        ({"uri": "postgresql://u:hunter2@h/db"}, "uri contains a password"),
        ({"uri": "postgresql://h/db?password=hunter2"}, "uri contains a password"),
    ],
)
def test_source_config_errors(tmp_path: Path, src: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        _cfg(tmp_path, **src)
    assert "hunter2" not in str(err.value)


def test_password_from_env_in_the_uri_is_allowed_and_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHS_TEST_PW", "s3cr%zz")  # an invalid %-escape: libpq echoes it back
    cfg = _cfg(tmp_path, uri="postgresql://u:${CHS_TEST_PW}@127.0.0.1:1/db", table="orders")
    with pytest.raises(SourceError) as err:
        extract_dataset("orders", cfg, WINDOW)
    assert "s3cr" not in str(err.value)
    assert str(err.value).startswith("orders source postgresql://u:***@127.0.0.1:1/db (orders): ")


def test_extract_keeps_the_frame_equal_to_a_full_read(tmp_path: Path) -> None:
    EVENTS.write_parquet(tmp_path / "e.parquet")
    cfg = _cfg(tmp_path, "usage_events", uri="e.parquet")
    pushed = extract_dataset("usage_events", cfg, BACKFILL)
    full = extract_dataset(
        "usage_events", cfg, BACKFILL, reader=lambda n, s, c, p: read_source(n, s, c)
    )
    assert_frame_equal(pushed, full)


def test_value_map_of_an_unknown_column_is_a_config_error(tmp_path: Path) -> None:
    _orders_csv(tmp_path, f"{ORDERS_HEADER}\nO1,a,2026-03-01,1\n")
    with pytest.raises(
        ConfigError, match=r"\[sources.orders.values\] maps values of unknown column 'knd'"
    ):
        _extract(tmp_path, uri="orders.csv", values={"knd": {"R": "refund"}})
