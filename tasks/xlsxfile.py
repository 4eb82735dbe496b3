"""``<out>/<D>/at_risk.xlsx``: the at-risk accounts and the actions, for people who live in
spreadsheets.

Written with xlsxwriter, one sheet per table: a bold header row, frozen below the header,
an autofilter, widths from the content, and typed cells: numbers as numbers (formatted by the
column's kind, as in ``tasks.csvfile``), dates as dates, booleans as booleans, and every text
cell through ``write_string``, so no value ever becomes a formula. The workbook is written in
xlsxwriter's ``constant_memory`` mode (row by row). xlsxwriter costs about 15 µs a cell, so
each sheet stops at ``[output] xlsx_max_rows`` (10,000 by default: about 3 s for both sheets;
the CSVs have every row).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from tasks.actions import PRIORITY_ORDER
from tasks.csvfile import kind

AT_RISK_FILE = "at_risk.xlsx"
AT_RISK_COLUMNS = (
    "account_id",
    "name",
    "score",
    "arr",
    "renewal_date",
    "tier",
    "csm_email",
    "score_delta_1w",
    "score_delta_4w",
    "p_churn_90d",
    "expected_arr_at_risk",
    "top_drivers",
    "change_drivers",
)
NUMBER_FORMATS = {"money": "#,##0.00", "score": "0.0", "points": "0.00", "ratio": "0.0000"}
MAX_WIDTH, WIDTH_SAMPLE = 60, 500  # characters; rows looked at to size a column


def at_risk(scores: pl.DataFrame) -> pl.DataFrame:
    """Return the at-risk accounts, lowest score first, with the columns a CSM works from."""
    cols = [c for c in AT_RISK_COLUMNS if c in scores.columns]
    rows = scores.filter(pl.col("segment") == "at_risk")
    return rows.sort(["score", "account_id"], nulls_last=True).select(cols)


def first_actions(actions: pl.DataFrame) -> pl.DataFrame:
    """Return the actions most urgent first (then by due date), as a CSM works them."""
    rank = pl.col("priority").replace_strict(PRIORITY_ORDER, default=len(PRIORITY_ORDER))
    return actions.sort(rank, pl.col("due_date"), pl.col("account_id"), nulls_last=True)


def write_workbook(
    path: Path, sheets: Sequence[tuple[str, pl.DataFrame]], max_rows: int | None = None
) -> None:
    """Write each (sheet name, frame) to one sheet of a new workbook at ``path``.

    A frame longer than ``max_rows`` is cut there, with a last line saying how many rows
    the sheet leaves out (the CSV beside it has them all).
    """
    options = {"constant_memory": True, "nan_inf_to_errors": True, "strings_to_formulas": False}
    wb = xlsxwriter.Workbook(str(path), options)
    try:
        formats = _Formats(wb)
        for name, frame in sheets:
            keep = frame.height if max_rows is None else min(max_rows, frame.height)
            ws = wb.add_worksheet(name)
            _write_sheet(ws, frame.head(keep), formats)
            if keep < frame.height:
                left = frame.height - keep
                note = f"… and {left:,} more rows, not shown here: see the CSV files of the date"
                ws.write_string(keep + 1, 0, note)
    finally:
        wb.close()


def write_at_risk(
    path: Path, scores: pl.DataFrame, actions: pl.DataFrame, max_rows: int | None = None
) -> None:
    """Write ``at_risk.xlsx``: the "At risk" and "Actions" sheets, each up to ``max_rows``."""
    sheets = [("At risk", at_risk(scores)), ("Actions", first_actions(actions))]
    write_workbook(path, sheets, max_rows)


class _Formats:
    """The workbook's cell formats, made once."""

    def __init__(self, wb: xlsxwriter.Workbook) -> None:
        self.header = wb.add_format({"bold": True, "bottom": 1, "bg_color": "#E8EEF4"})
        self.date = wb.add_format({"num_format": "yyyy-mm-dd"})
        self.datetime = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        self.integer = wb.add_format({"num_format": "0"})
        self.number = {k: wb.add_format({"num_format": f}) for k, f in NUMBER_FORMATS.items()}


def _width(frame: pl.DataFrame, name: str) -> int:
    sample = frame[name].head(WIDTH_SAMPLE).cast(pl.String, strict=False).str.len_chars()
    longest = sample.max()
    return min(MAX_WIDTH, max(len(name), int(longest) if isinstance(longest, int) else 0) + 2)


def _write_sheet(ws: Worksheet, frame: pl.DataFrame, fmt: _Formats) -> None:
    frame = frame.with_columns(
        pl.col(c).list.join("; ")
        for c, t in frame.schema.items()
        if isinstance(t, pl.List) and t.inner == pl.String
    )
    writers = []
    for i, (name, dtype) in enumerate(frame.schema.items()):
        ws.set_column(i, i, _width(frame, name))
        writers.append(_writer(ws, dtype, name, fmt))
    for i, name in enumerate(frame.columns):
        ws.write_string(0, i, name, fmt.header)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(frame.height, 1), max(len(frame.columns) - 1, 0))
    for r, row in enumerate(frame.iter_rows(), start=1):
        for c, value in enumerate(row):
            if value is not None:
                writers[c](r, c, value)


def _writer(ws: Worksheet, dtype: pl.DataType, name: str, fmt: _Formats) -> Any:
    """Return the typed cell writer of a column: (row, col, value) -> None."""
    if dtype == pl.Boolean:
        return ws.write_boolean
    if dtype == pl.Date:
        return lambda r, c, v: ws.write_datetime(r, c, v, fmt.date)
    if isinstance(dtype, pl.Datetime):
        return lambda r, c, v: ws.write_datetime(r, c, v.replace(tzinfo=None), fmt.datetime)
    if dtype.is_integer():
        return lambda r, c, v: ws.write_number(r, c, v, fmt.integer)
    if dtype.is_float():
        number = fmt.number[kind(name)]
        return lambda r, c, v: v == v and ws.write_number(r, c, v, number)  # NaN: blank
    return lambda r, c, v: ws.write_string(r, c, v if isinstance(v, str) else _text(v))


def _text(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
