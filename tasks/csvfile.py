"""The one CSV writer: every CSV the product writes opens right in a spreadsheet.

- UTF-8 with a byte-order mark by default (``[output] csv_bom``), so Excel reads "Zürich";
- numbers at a precision that suits their kind (money 2 places, scores 1, measure points 2,
  ratios, probabilities and raw measure values 4; integers and whole money as integers),
  rounded in Polars before the write, which is faster than ``float_precision``;
- text cells that a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a
  carriage return) get a leading apostrophe (OWASP, "CSV Injection"); numeric columns and
  text that is a plain number (``-12.5``) are left alone.

``read_own_csv`` reads such a file back as the product wrote it: the BOM dropped (Polars does
that) and the guard undone. Parquet files are written exact and never pass through here.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from tasks.schemas import DIMENSIONS

FORMULA_START = r"^[=+\-@\t\r]"  # what a spreadsheet may run as a formula
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_GUARDED = r"^'[=+\-@\t\r]"


_MONEY = re.compile(r"(^|_)(arr|mrr|clv|revenue|amount|cac|margin|price|cost)($|_)")
_SCORE = re.compile(r"(^|_)score($|_)")

PLACES = {"money": 2, "score": 1, "points": 2, "ratio": 4}


def kind(column: str) -> str:
    """Return the kind of a float column from its name: money, score, points or ratio."""
    if column.startswith("points_"):
        return "points"
    if column.startswith("value_"):
        return "ratio"  # a measure's raw value: a count, a ratio or a mean
    if column in DIMENSIONS or _SCORE.search(column):
        return "score"
    return "money" if _MONEY.search(column) else "ratio"


def rounded(df: pl.DataFrame) -> pl.DataFrame:
    """Round every float column to its kind's places; money has two places, or none when
    every amount of the column is whole.
    """
    exprs = []
    for name, dtype in df.schema.items():
        if not dtype.is_float():
            continue
        col = pl.col(name).round(PLACES[kind(name)])
        if kind(name) == "money":
            col = col.cast(pl.Int64) if _whole(df[name]) else _cents(name)
        exprs.append(col.alias(name))
    return df.with_columns(exprs) if exprs else df


def _cents(name: str) -> pl.Expr:
    """Money with cents as text with exactly two places ("4980.00", "-12.50"), which every
    spreadsheet reads as a number; NaN and infinities stay as Polars writes them.
    """
    x = pl.col(name)
    cents = (x * 100).round(0)
    digits = cents.abs().cast(pl.Int64, strict=False).cast(pl.String).str.zfill(3)
    text = pl.concat_str(
        pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        digits.str.slice(0, digits.str.len_chars() - 2),
        pl.lit("."),
        digits.str.slice(-2),
    )
    return pl.when(x.is_finite()).then(text).otherwise(x.cast(pl.String))


def _whole(values: pl.Series) -> bool:
    finite = values.drop_nulls().drop_nans()
    if finite.is_empty() or not finite.is_finite().all():
        return False
    return bool((finite == finite.round(0)).all() and (finite.abs() < 2**53).all())


def guarded(df: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells a spreadsheet would run as a formula with an apostrophe."""
    text = [name for name, dtype in df.schema.items() if dtype == pl.String]
    return df.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START) & ~pl.col(c).str.contains(_PLAIN_NUMBER))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def unguarded(df: pl.DataFrame) -> pl.DataFrame:
    """Undo ``guarded`` on every text column: the values as they were before writing."""
    text = [name for name, dtype in df.schema.items() if dtype == pl.String]
    return df.with_columns(
        pl.when(pl.col(c).str.contains(_GUARDED))
        .then(pl.col(c).str.slice(1))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def for_spreadsheet(df: pl.DataFrame) -> pl.DataFrame:
    """Return the frame as it is written: numbers rounded by kind, formulas guarded."""
    return guarded(rounded(df))


def write_csv(df: pl.DataFrame, path: Path, bom: bool = True) -> None:
    """Write ``df`` to ``path`` as a spreadsheet-safe CSV (see the module docstring)."""
    for_spreadsheet(df).write_csv(path, include_bom=bom)


def csv_bytes(df: pl.DataFrame, bom: bool = True) -> bytes:
    """Return ``df`` as the bytes of a spreadsheet-safe CSV, e.g. for an e-mail attachment."""
    out = for_spreadsheet(df).write_csv(include_bom=False).encode("utf-8")
    return b"\xef\xbb\xbf" + out if bom else out


def read_own_csv(path: Path) -> pl.DataFrame:
    """Read a CSV this module wrote, every column as text, with the formula guard undone."""
    return unguarded(pl.read_csv(path, infer_schema=False))
