"""The one CSV writer and the .xlsx writer: BOM, precision by kind, the formula guard, typed
workbook cells, read back by real readers (Polars, the csv module, fastexcel).
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from pathlib import Path

import fastexcel
import polars as pl
import pytest

from tasks.csvfile import csv_bytes, kind, read_own_csv, write_csv
from tasks.xlsxfile import at_risk, write_at_risk, write_workbook

HOSTILE = '=HYPERLINK("http://x","y")'
BOM = b"\xef\xbb\xbf"


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4", "A5", "A6"],
            "name": [HOSTILE, "Zürich", "+41 44 000", "@cmd", "\tx", "-5"],
            "reason": ["-2+3+cmd|' /C calc'!A0", "fine", None, "\rcr", "ok", "ok"],
            "arr": [2230.0, 100.0, 0.0, None, 5.0, 12.0],
            "expected_arr_at_risk": [12.3456, 0.0, 1.0, 2.0, 3.0, 4.0],
            "score": [71.456, None, 3.04, 50.0, 0.0, 100.0],
            "usage": [12.345, 1.0, 2.0, 3.0, 4.0, 5.0],
            "points_stickiness": [3.14159, 0.0, 1.0, 1.0, 1.0, 1.0],
            "value_stickiness": [0.123456789, 0.5, 0.25, 0.1, 0.0, 1.0],
            "p_churn_90d": [0.0123456, None, 0.5, 0.25, 0.125, float("nan")],
            "seats": [10, 20, 30, 40, 50, 60],
            "renewal_date": [date(2027, 1, 31)] * 6,
            "segment": ["at_risk", "healthy", "at_risk", "neutral", "at_risk", None],
        }
    )


def test_kinds_of_columns() -> None:
    assert [kind(c) for c in ("arr", "children_arr", "expected_arr_at_risk", "clv")] == [
        "money"
    ] * 4
    assert [kind(c) for c in ("score", "score_delta_1w", "worst_child_score", "usage")] == [
        "score"
    ] * 4
    assert kind("points_spend_trend") == "points"
    assert [kind(c) for c in ("value_spend_trend", "coverage", "p_churn_90d")] == ["ratio"] * 3


def test_csv_has_a_bom_numbers_by_kind_and_inert_text(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    write_csv(_frame(), path)
    raw = path.read_bytes()
    assert raw.startswith(BOM)
    rows = list(csv.DictReader(io.StringIO(raw[3:].decode("utf-8"), newline="")))
    first = rows[0]
    assert first["name"] == "'" + HOSTILE
    assert first["reason"] == "'-2+3+cmd|' /C calc'!A0"
    assert [r["name"] for r in rows[1:]] == ["Zürich", "'+41 44 000", "'@cmd", "'\tx", "-5"]
    assert rows[3]["reason"] == "'\rcr"
    assert first["arr"] == "2230"
    assert rows[2]["arr"] == "0"
    assert rows[3]["arr"] == ""
    assert first["expected_arr_at_risk"] == "12.35"
    assert rows[1]["expected_arr_at_risk"] == "0.00"
    assert first["score"] == "71.5"
    assert rows[2]["score"] == "3.0"
    assert first["usage"] == "12.3"
    assert first["points_stickiness"] == "3.14"
    assert first["value_stickiness"] == "0.1235"
    assert first["p_churn_90d"] == "0.0123"
    assert first["seats"] == "10"
    assert first["renewal_date"] == "2027-01-31"


def test_money_with_cents_keeps_them_and_the_bom_can_be_off(tmp_path: Path) -> None:
    df = pl.DataFrame({"arr": [10.5, 3.0], "name": ["Zürich", "x"]})
    path = tmp_path / "plain.csv"
    write_csv(df, path, bom=False)
    assert path.read_bytes() == "arr,name\n10.50,Zürich\n3.00,x\n".encode()
    assert csv_bytes(df) == BOM + path.read_bytes()
    assert csv_bytes(df, bom=False) == path.read_bytes()


def test_money_keeps_its_sign_and_special_values() -> None:
    df = pl.DataFrame({"arr": [-12.5, -0.004, 0.07, 1234567.891, None, float("inf")]})
    text = csv_bytes(df, bom=False).decode().splitlines()[1:]
    assert text == ["-12.50", "0.00", "0.07", "1234567.89", "", "inf"]


def test_the_product_reads_its_own_csv_back_as_it_was(tmp_path: Path) -> None:
    df = _frame().select("account_id", "name", "reason")
    path = tmp_path / "export.csv"
    write_csv(df, path)
    back = read_own_csv(path)
    assert back.columns == df.columns  # the BOM is not part of the first column's name
    assert back.equals(df)


def test_workbook_has_typed_cells_and_no_formulas(tmp_path: Path) -> None:
    book = tmp_path / "at_risk.xlsx"
    scores = _frame()
    write_workbook(book, [("At risk", at_risk(scores)), ("Everything", scores)])
    with zipfile.ZipFile(book) as z:
        xml = z.read("xl/worksheets/sheet2.xml").decode()
    assert "<f>" not in xml
    assert 'ySplit="1"' in xml
    assert "<autoFilter" in xml
    assert "<col " in xml  # widths set
    assert 't="inlineStr"><is><t>=HYPERLINK(' in xml  # the name is stored text
    reader = fastexcel.read_excel(book)
    risky = reader.load_sheet("At risk").to_polars()
    assert risky["account_id"].to_list() == ["A5", "A3", "A1"]  # lowest score first
    assert risky.columns[:3] == ["account_id", "name", "score"]
    every = reader.load_sheet("Everything").to_polars()
    assert every["name"].to_list() == _frame()["name"].to_list()  # exact text, nothing run
    assert every.schema["arr"] == pl.Float64
    assert every["arr"][0] == 2230.0
    assert every["score"][0] == pytest.approx(71.456)  # full precision; format shows 71.5
    assert every["seats"].to_list() == [10, 20, 30, 40, 50, 60]
    assert every["renewal_date"].dt.date().to_list() == [date(2027, 1, 31)] * 6
    assert every["p_churn_90d"][5] is None  # NaN: a blank cell


def test_empty_at_risk_list_still_makes_a_workbook(tmp_path: Path) -> None:
    book = tmp_path / "empty.xlsx"
    scores = _frame().filter(pl.col("segment") == "nothing")
    write_workbook(book, [("At risk", at_risk(scores))])
    sheet = fastexcel.read_excel(book).load_sheet("At risk").to_polars()
    assert sheet.height == 0
    assert "name" in sheet.columns


def test_a_long_sheet_stops_at_its_limit_and_says_how_many_rows_it_leaves_out(
    tmp_path: Path,
) -> None:
    book = tmp_path / "capped.xlsx"
    actions = pl.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(7)],
            "priority": ["low", "urgent", "high", "medium", "urgent", "low", "high"],
            "due_date": [date(2027, 1, 10 - i) for i in range(7)],
        }
    )
    write_at_risk(book, _frame(), actions, max_rows=3)
    sheet = fastexcel.read_excel(book).load_sheet("Actions").to_polars()
    assert sheet["account_id"].to_list()[:3] == ["A4", "A1", "A6"]  # urgent, then high by due
    assert (
        sheet["account_id"][3] == "… and 4 more rows, not shown here: see the CSV files of the date"
    )
    assert sheet.height == 4
    risky = fastexcel.read_excel(book).load_sheet("At risk").to_polars()
    assert risky.height == 3  # all three at-risk accounts fit
