"""Every file and embedded database source kind, encodings, mapping and clear errors."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tasks.config import parse_config
from tasks.errors import SourceError
from tasks.extract import REASON, Window, extract_dataset

WINDOW = Window(date(2026, 3, 31), datetime(2026, 4, 1, 12))


def _cfg(tmp: Path, **src: object) -> object:
    return parse_config({"sources": {"accounts": {"uri": "x.csv"}, "orders": src}}, tmp)


def _orders_csv(tmp: Path, text: str, encoding: str = "utf-8", name: str = "orders.csv") -> None:
    (tmp / name).write_bytes(text.encode(encoding))


def test_csv_with_bom_mapping_and_cast_failures(tmp_path: Path) -> None:
    _orders_csv(
        tmp_path,
        "\ufeffId;Acct;When;Total\nO1;a;2026-03-01 10:00:00;10.5\nO2;a;2026-03-02;abc\nO3;b;2026-04-01 08:00;1\nO4;b;2026-09-01;1\n",
    )
    cfg = _cfg(
        tmp_path,
        uri="orders.csv",
        separator=";",
        columns={"order_id": "Id", "account_id": "Acct", "ordered_at": "When", "amount": "Total"},
    )
    df = extract_dataset("orders", cfg, WINDOW)  # type: ignore[arg-type]
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


@pytest.mark.parametrize("encoding", ["cp1251", "latin-1"])
def test_legacy_encodings(tmp_path: Path, encoding: str) -> None:
    name = "ООО Ромашка" if encoding == "cp1251" else "Müller Straße"
    _orders_csv(
        tmp_path,
        f"order_id,account_id,ordered_at,amount,currency\nO1,a,2026-03-01,1,{name}\n",
        encoding,
    )
    df = extract_dataset("orders", _cfg(tmp_path, uri="orders.csv", encoding=encoding), WINDOW)  # type: ignore[arg-type]
    assert df["currency"].to_list() == [name]


def test_wrong_encoding_is_one_sentence(tmp_path: Path) -> None:
    _orders_csv(
        tmp_path,
        "order_id,account_id,ordered_at,amount,currency\nO1,a,2026-03-01,1,Müller\n",
        "latin-1",
    )
    with pytest.raises(SourceError, match="not valid utf-8"):
        extract_dataset("orders", _cfg(tmp_path, uri="orders.csv"), WINDOW)  # type: ignore[arg-type]


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
    df = extract_dataset("orders", _cfg(tmp_path, uri="o*.parquet"), WINDOW)  # type: ignore[arg-type]
    assert sorted(df["order_id"].to_list()) == ["O1", "O2"]
    (tmp_path / "o.jsonl").write_text(
        '{"order_id": "J1", "account_id": "a", "ordered_at": "2026-03-01T00:00:00", "amount": 3}\n'
    )
    df = extract_dataset("orders", _cfg(tmp_path, uri="o.jsonl"), WINDOW)  # type: ignore[arg-type]
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
    d = extract_dataset(
        "orders", _cfg(tmp_path, uri="duckdb:///crm.duckdb", table="orders"), WINDOW
    )  # type: ignore[arg-type]
    assert d["amount"].to_list() == [5.0]
    s = extract_dataset(
        "orders",
        _cfg(
            tmp_path,
            uri="sqlite:///crm.sqlite",
            query="select id as order_id, acct as account_id, ts as ordered_at, amt as amount from o where acct = 'a'",
        ),  # type: ignore[arg-type]
        WINDOW,
    )
    assert s["order_id"].to_list() == ["S1"]
    assert s["ordered_at"].to_list() == [datetime(2026, 3, 1, 8)]


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ({"uri": "missing.csv"}, r"orders source missing.csv: file .*missing.csv does not exist"),
        ({"uri": "duckdb:///nope.duckdb", "table": "orders"}, "does not exist"),
        ({"uri": "orders.csv"}, "has no column 'amount', which the orders dataset requires"),
    ],
)
def test_source_errors_are_one_sentence(tmp_path: Path, src: dict[str, str], message: str) -> None:
    _orders_csv(tmp_path, "order_id,account_id,ordered_at\nO1,a,2026-03-01\n")
    with pytest.raises(SourceError, match=message):
        extract_dataset("orders", _cfg(tmp_path, **src), WINDOW)  # type: ignore[arg-type]
