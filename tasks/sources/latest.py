"""Change logs and snapshots (``latest_by``): the record of a key as of a date.

A source with ``latest_by`` holds several rows per key (a helpdesk event log, a CRM history
export). Its rows carry the ``latest_by`` value as ``LATEST``; every row is validated, and per
key the accepted row with the latest ``LATEST`` not after the as-of date is the record. The older
accepted rows are valid history: they count as accepted and are reported as superseded. A row
without a ``latest_by`` value ranks before every dated row of its key.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from tasks.config import SourceConfig
from tasks.schemas import TS, Dataset

LATEST = "_latest"  # the row's latest_by value, as a naive UTC date-time


def source_column(src: SourceConfig) -> str | None:
    """Return the source column that ``latest_by`` names (it may name a mapped canonical one)."""
    if src.latest_by is None:
        return None
    return src.columns.get(src.latest_by, src.latest_by)


def after_rename(src: SourceConfig) -> str | None:
    """Return the column's name once the source's columns are renamed to canonical ones."""
    col = source_column(src)
    if col is None:
        return None
    renamed = {s: c for c, s in src.columns.items()}
    return renamed.get(col, col)


def not_after(df: pl.DataFrame, end: datetime) -> pl.DataFrame:
    """Drop the rows whose ``latest_by`` value is after ``end``: they do not exist yet."""
    if LATEST not in df.columns:
        return df
    return df.filter(pl.col(LATEST).is_null() | (pl.col(LATEST) <= end))


def pick_records(accepted: pl.DataFrame, ds: Dataset) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split accepted rows into each key's record (its latest row) and the superseded rest."""
    if LATEST not in accepted.columns or ds.key is None:
        return accepted, accepted.clear()
    # undated rows sort first; rows sharing a key and a latest_by value never get here (they
    # are quarantined as duplicates), so the order within a key is total
    i = "_i"
    ordered = accepted.with_row_index(i).sort(
        [ds.key, LATEST], nulls_last=False, maintain_order=True
    )
    last = pl.col(i) == pl.col(i).last().over(ds.key)
    records = ordered.filter(last).sort(i).drop(i)
    return records, ordered.filter(~last).sort(i).drop(i)


def version_key(ds: Dataset) -> pl.Expr:
    """Return what must be unique in a change log: the key together with its latest_by value."""
    return pl.struct(ds.key or "", LATEST)


def latest_expr(col: str, current: pl.DataType, parse: pl.Expr) -> pl.Expr:
    """Return the typed ``latest_by`` value: text parsed like the source's time columns."""
    c = pl.col(col)
    if current == pl.String:
        return parse
    if isinstance(current, pl.Datetime) and current.time_zone:
        return c.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(TS)
    if current.is_numeric():
        return parse  # parsed from its text (e.g. "%s" for Unix seconds)
    return c.cast(TS, strict=False)
