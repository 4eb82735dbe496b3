"""PostgreSQL sources over a real connection: the server on 127.0.0.1:5432 (user postgres)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import adbc_driver_postgresql.dbapi as adbc
import duckdb
import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from prefect.blocks.system import Secret

from tasks.config import Config, load_config, parse_config
from tasks.errors import ConfigError, SourceError
from tasks.features.build import build_features
from tasks.schemas import DATASETS, DIMENSIONS
from tasks.score import score_accounts
from tasks.sources.plan import ROW, Window, plan_read
from tasks.sources.read import extract_dataset, read_source
from tasks.validate import validate_dataset
from tests.conftest import DEMO_END

pytestmark = pytest.mark.postgres

SERVER = "postgresql://postgres@127.0.0.1:5432"
WINDOW = Window(date(2026, 3, 31), datetime(2026, 11, 1))
_PG_TYPES = {pl.String: "text", pl.Int64: "bigint", pl.Float64: "double precision", pl.Date: "date"}


@pytest.fixture(scope="session")
def pg_url(pg_database: str) -> str:
    """The session's own PostgreSQL database (created and dropped in conftest.py)."""
    return pg_database


def _pg_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone else "timestamp"
    return _PG_TYPES.get(dtype, "text")  # type: ignore[call-overload]


def _load(url: str, table: str, frame: pl.DataFrame) -> None:
    """Create ``table`` with the frame's types and copy its rows in."""
    cols = ", ".join(f'"{c}" {_pg_type(t)}' for c, t in frame.schema.items())
    names = ", ".join(f'"{c}"' for c in frame.columns)
    with psycopg.connect(url) as con, con.cursor() as cur:
        cur.execute(f'drop table if exists "{table}"; create table "{table}" ({cols})')
        with cur.copy(f'copy "{table}" ({names}) from stdin') as copy:
            for row in frame.iter_rows():
                copy.write_row(row)


def _cfg(tmp: Path, **orders: Any) -> Config:
    return parse_config({"sources": {"accounts": {"uri": "a.csv"}, "orders": orders}}, tmp)


ORDERS = pl.DataFrame(
    {
        "Order No": ["O1", "O2", "O3", "O4"],
        "Account": ["a", "a", "b", "b"],
        "Created": [
            datetime(2025, 1, 5),
            datetime(2026, 3, 1, 9, 30),
            datetime(2026, 6, 1),  # after the as-of date: not read
            datetime(2206, 1, 1),  # after the run time: read, for quarantine
        ],
        "Total": [10.0, 20.5, 1.0, 2.0],
        "Notes": ["x", "y", "z", "w"],
    }
)
MAPPING = {
    "order_id": "Order No",
    "account_id": "Account",
    "ordered_at": "Created",
    "amount": "Total",
}


def test_table_and_query_with_mapping(pg_url: str, tmp_path: Path) -> None:
    _load(pg_url, "Orders Export", ORDERS)
    query = 'select * from "Orders Export" where "Account" = \'a\';'
    by_query = extract_dataset(
        "orders", _cfg(tmp_path, uri=pg_url, query=query, columns=MAPPING), WINDOW
    )
    assert by_query["order_id"].to_list() == ["O1", "O2"]
    _load(pg_url, "orders", ORDERS.rename({"Order No": "order_no"}))
    mapping = {**MAPPING, "order_id": "order_no"}
    by_table = extract_dataset(
        "orders", _cfg(tmp_path, uri=pg_url, table="orders", columns=mapping), WINDOW
    )
    assert by_table["order_id"].to_list() == ["O1", "O2", "O4"]
    assert by_table["ordered_at"].to_list() == [
        datetime(2025, 1, 5),
        datetime(2026, 3, 1, 9, 30),
        datetime(2206, 1, 1),
    ]
    assert by_table.schema["amount"] == pl.Float64


def test_only_the_window_and_the_canonical_columns_are_read(pg_url: str, tmp_path: Path) -> None:
    events = pl.DataFrame(
        {
            "account_id": ["a"] * 4,
            "user_id": ["u"] * 4,
            "event": ["login"] * 4,
            "ts": [
                datetime(2025, 6, 1),
                datetime(2026, 3, 1),
                datetime(2026, 6, 1),
                datetime(2206, 1, 1),
            ],
            "payload": ["{}"] * 4,
        }
    )
    _load(pg_url, "events", events)
    with psycopg.connect(pg_url) as con:
        con.execute(
            "create or replace function boom() returns text language plpgsql as "
            "$$ begin raise exception 'read a row outside the window'; end $$"
        )
    # the server raises for any row it evaluates outside the 60-day look-back
    query = "select account_id, user_id, ts, payload, case when ts < '2026-01-01' then boom() else event end as event from events"
    cfg = parse_config(
        {
            "sources": {
                "accounts": {"uri": "a.csv"},
                "usage_events": {"uri": pg_url, "query": query},
            }
        },
        tmp_path,
    )
    plan = plan_read("usage_events", cfg, WINDOW)
    raw = read_source("usage_events", cfg.sources["usage_events"], cfg, plan)
    assert raw.columns == ["account_id", "user_id", "ts", "event"]  # no payload
    assert raw["ts"].to_list() == [datetime(2026, 3, 1), datetime(2206, 1, 1)]


def test_text_and_timestamptz_columns(pg_url: str, tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "order_id": ["T1", "T2", "T3"],
            "account_id": ["a"] * 3,
            "ordered_at": ["2026-03-01 10:00:00", "01/03/2026", "2025-01-01"],
            "amount": [1.0, 2.0, 3.0],
            "paid_at": [datetime(2026, 3, 1, 12)] * 3,
        }
    ).with_columns(pl.col("paid_at").dt.replace_time_zone("Europe/Berlin"))
    _load(pg_url, "text_orders", frame)
    df = extract_dataset("orders", _cfg(tmp_path, uri=pg_url, table="text_orders"), WINDOW)
    # text timestamps compare as text at the server; other text is kept and fails the cast
    assert df["order_id"].to_list() == ["T1", "T2", "T3"]
    assert (
        df["_reason"][1] == "ordered_at: '01/03/2026' is not a date-time (YYYY-MM-DD[ HH:MM[:SS]])"
    )
    tz = extract_dataset(
        "orders",
        _cfg(tmp_path, uri=pg_url, table="text_orders", columns={"ordered_at": "paid_at"}),
        WINDOW,
    )
    assert tz["ordered_at"].to_list() == [datetime(2026, 3, 1, 11)] * 3  # 12:00 CET is 11:00 UTC


def test_errors_name_the_source_and_nothing_is_written(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"\(nope\): relation \"nope\" does not exist\.$"):
        extract_dataset("orders", _cfg(tmp_path, uri=pg_url, table="nope"), WINDOW)
    with pytest.raises(SourceError, match=r'database "chs_no_such_db" does not exist'):
        extract_dataset(
            "orders", _cfg(tmp_path, uri=f"{SERVER}/chs_no_such_db", table="orders"), WINDOW
        )
    with psycopg.connect(pg_url) as con:
        con.execute("create sequence if not exists s")
    # a query from the config runs in a read-only transaction
    query = "select order_no as order_id, nextval('s') as n from orders"
    with pytest.raises(SourceError, match="read-only transaction"):
        extract_dataset("orders", _cfg(tmp_path, uri=pg_url, query=query), WINDOW)


@pytest.fixture
def connect_spy(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the libpq settings of every ADBC connection (the real one still runs)."""
    calls: list[dict[str, Any]] = []
    real = adbc.connect

    def spy(uri: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(dict(parse_qsl(urlsplit(uri).query)))
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(adbc, "connect", spy)
    return calls


def test_password_from_env_reaches_the_driver_and_never_a_message(
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    connect_spy: list[dict[str, Any]],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CHS_TEST_PG_PASSWORD", "pw-4f1a9c")
    _load(pg_url, "orders", ORDERS.rename({"Order No": "order_no"}))
    cfg = _cfg(
        tmp_path,
        uri=pg_url,
        table="orders",
        password_env="CHS_TEST_PG_PASSWORD",
        columns={**MAPPING, "order_id": "order_no"},
    )
    assert extract_dataset("orders", cfg, WINDOW).height == 3
    assert connect_spy[-1]["password"] == "pw-4f1a9c"  # trust auth accepts and ignores it
    bad = _cfg(tmp_path, uri=pg_url, table="nope", password_env="CHS_TEST_PG_PASSWORD")
    with pytest.raises(SourceError) as err:
        extract_dataset("orders", bad, WINDOW)
    assert "pw-4f1a9c" not in str(err.value) + caplog.text
    monkeypatch.delenv("CHS_TEST_PG_PASSWORD")
    with pytest.raises(
        ConfigError,
        match=r"^\[sources.orders\] password_env names CHS_TEST_PG_PASSWORD, which is not set\.$",
    ):
        extract_dataset("orders", cfg, WINDOW)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_password_from_a_prefect_secret_block(
    pg_url: str, tmp_path: Path, connect_spy: list[dict[str, Any]]
) -> None:
    Secret(value="pw-from-block").save("chs-test-pg-password", overwrite=True)
    _load(pg_url, "orders", ORDERS.rename({"Order No": "order_no"}))
    mapping = {**MAPPING, "order_id": "order_no"}
    cfg = _cfg(
        tmp_path,
        uri=pg_url,
        table="orders",
        password_secret="chs-test-pg-password",
        columns=mapping,
    )
    assert extract_dataset("orders", cfg, WINDOW).height == 3
    assert connect_spy[-1]["password"] == "pw-from-block"
    missing = _cfg(tmp_path, uri=pg_url, table="orders", password_secret="chs-no-such-block")
    with pytest.raises(
        ConfigError, match="Prefect Secret block 'chs-no-such-block', which cannot be loaded"
    ):
        extract_dataset("orders", missing, WINDOW)


def _copy_demo(demo: Path, pg_url: str, tmp: Path) -> tuple[Config, Config]:
    """Copy every demo dataset, as read, into one DuckDB file and one PostgreSQL database."""
    demo_cfg = load_config(demo / "chs.toml")
    con = duckdb.connect(str(tmp / "all.duckdb"))
    sources: dict[str, dict[str, Any]] = {}
    for name, src in demo_cfg.sources.items():
        raw = read_source(name, src, demo_cfg).drop(ROW, strict=False)
        con.register("_raw", raw.to_arrow())
        con.execute(f"create table {name} as select * from _raw")
        con.unregister("_raw")
        _load(pg_url, name, raw)
        sources[name] = {
            "table": name,
            "columns": src.columns,
            "datetime_format": src.datetime_format,
        }
    con.close()
    # validation runs as the suites' Polars translation (test_validate keeps it equal to GX)
    fast = {"gx_max_rows": 0}
    duck = {n: {**s, "uri": "duckdb:///all.duckdb"} for n, s in sources.items()}
    pg = {n: {**s, "uri": pg_url} for n, s in sources.items()}
    return (
        parse_config({"sources": duck, "validation": fast}, tmp),
        parse_config({"sources": pg, "validation": fast}, tmp),
    )


def _scores(cfg: Config, as_of: date) -> pl.DataFrame:
    run_time = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    window = Window(as_of, run_time)
    accounts = validate_dataset(extract_dataset("accounts", cfg, window), "accounts", cfg, run_time)
    ids = accounts.accepted["account_id"].to_list()
    data = {"accounts": accounts.accepted}
    for name in DATASETS:
        if name != "accounts" and name in cfg.sources:
            typed = extract_dataset(name, cfg, window)
            data[name] = validate_dataset(typed, name, cfg, run_time, ids).accepted
    return score_accounts(build_features(data, cfg, as_of), cfg)


def test_scores_from_postgres_equal_scores_from_duckdb(
    demo_template: Path, pg_url: str, tmp_path: Path
) -> None:
    duck, pg = _copy_demo(demo_template, pg_url, tmp_path)
    for as_of in (DEMO_END, DEMO_END - timedelta(days=70)):
        from_duckdb, from_postgres = _scores(duck, as_of), _scores(pg, as_of)
        assert from_duckdb.height > 100
        assert all(from_duckdb[d].count() > 50 for d in DIMENSIONS)  # every source counted
        assert_frame_equal(from_postgres, from_duckdb)
