"""Orders to the models' inputs: read an orders file (or the CDNOW sample) and summarise each
customer's recency, frequency, age and mean value (RFM) as of a calibration end.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from tasks.errors import ChsError

ORDER_COLUMNS: tuple[str, ...] = ("order_id", "account_id", "ordered_at", "amount")
_CDNOW_COLUMNS = ("master_id", "sample_id", "date", "cds", "dollars")


def read_cdnow(path: Path | str) -> pl.DataFrame:
    """Read the raw CDNOW text file (master id, sample id, YYYYMMDD, CDs, dollars) as orders."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ChsError(f"The orders file {path} cannot be read as text: {err}.") from err
    stripped = pl.Series("line", text.splitlines()).str.strip_chars()
    lines = stripped.filter(stripped != "")
    parts = lines.str.replace_all(r"\s+", " ").str.split(" ")
    if parts.len() == 0:
        raise ChsError(f"The orders file {path} has no orders.")
    if not (parts.list.len() == len(_CDNOW_COLUMNS)).all():
        raise ChsError(
            f"{path} is neither CSV, Parquet, JSON Lines nor CDNOW text (five whitespace-separated "
            "columns)."
        )
    raw = pl.DataFrame(
        {name: parts.list.get(i) for i, name in enumerate(_CDNOW_COLUMNS)}
    ).with_row_index("line_no", offset=1)
    try:
        return raw.select(
            pl.format("{}-{}", "master_id", "line_no").alias("order_id"),
            pl.col("master_id").alias("account_id"),
            pl.col("date").str.to_date("%Y%m%d").cast(pl.Datetime("us")).alias("ordered_at"),
            pl.col("dollars").cast(pl.Float64).alias("amount"),
            pl.lit("order").alias("kind"),
        )
    except pl.exceptions.PolarsError as err:
        raise ChsError(f"{path} has a CDNOW row whose date or amount cannot be read.") from err


def read_orders(path: Path | str) -> pl.DataFrame:
    """Read an orders file (CSV, Parquet, JSON Lines or raw CDNOW text) as canonical orders."""
    path = Path(path)
    if not path.is_file():
        raise ChsError(f"The orders file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pl.read_ndjson(path) if path.stat().st_size else pl.DataFrame()
        elif suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False) if path.stat().st_size else pl.DataFrame()
        else:
            return read_cdnow(path)
    except pl.exceptions.PolarsError as err:
        raise ChsError(f"The orders file {path} cannot be read: {err}.") from err
    return _canonical_orders(frame, path)


def _canonical_orders(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Cast an orders frame read from a file to the canonical column types."""
    if frame.height == 0:
        raise ChsError(f"The orders file {path} has no orders.")
    missing = [c for c in ORDER_COLUMNS if c not in frame.columns]
    if missing:
        raise ChsError(f"The orders file {path} lacks the column(s) {', '.join(missing)}.")
    ordered_at = pl.col("ordered_at")
    if frame.schema["ordered_at"] == pl.String:
        ordered_at = ordered_at.str.to_datetime(time_unit="us", time_zone=None, strict=True)
    columns = [
        pl.col("order_id").cast(pl.String),
        pl.col("account_id").cast(pl.String),
        # Casting a zoned datetime away keeps its UTC instant, the canonical naive-UTC form.
        ordered_at.cast(pl.Datetime("us")).alias("ordered_at"),
        pl.col("amount").cast(pl.Float64),
    ]
    if "kind" in frame.columns:
        columns.append(pl.col("kind").cast(pl.String))
    try:
        return frame.select(columns)
    except pl.exceptions.PolarsError as err:
        raise ChsError(f"The orders file {path} has an unreadable ordered_at or amount.") from err


def _naive_utc(instant: datetime) -> datetime:
    """Return an instant as naive UTC, the convention of the canonical timestamp columns."""
    if instant.tzinfo is None:
        return instant
    return instant.astimezone(UTC).replace(tzinfo=None)


def cutoff(calibration_end: date | datetime) -> datetime:
    """Return the last instant counted in calibration (a date counts its whole day)."""
    if isinstance(calibration_end, datetime):
        return _naive_utc(calibration_end)
    return datetime.combine(calibration_end, datetime.max.time())


def _origin(calibration_end: date | datetime) -> datetime:
    """Return the instant T is measured to (midnight of a date, as in the CDNOW papers)."""
    if isinstance(calibration_end, datetime):
        return _naive_utc(calibration_end)
    return datetime.combine(calibration_end, datetime.min.time())


def _check_orders(orders: pl.DataFrame) -> None:
    """Raise ChsError when the orders frame is empty or lacks a canonical column."""
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise ChsError(f"The orders lack the column(s) {', '.join(missing)}.")
    if orders.height == 0:
        raise ChsError("There are no orders to fit a CLV model on.")


def _transactions(orders: pl.DataFrame) -> pl.DataFrame:
    """Drop refunds and merge one account's same-day orders into one transaction."""
    kept = orders
    if "kind" in orders.columns:
        kept = orders.filter(pl.col("kind").fill_null("order") != "refund")
    return (
        kept.group_by("account_id", pl.col("ordered_at").dt.date().alias("day"))
        .agg(pl.col("amount").sum())
        .sort("account_id", "day")
    )


def rfm_from_orders(
    orders: pl.DataFrame, calibration_end: date | datetime, time_unit_days: float = 7.0
) -> pl.DataFrame:
    """Summarise orders up to calibration_end as frequency, recency, T and monetary value."""
    _check_orders(orders)
    calibration = orders.filter(pl.col("ordered_at") <= cutoff(calibration_end))
    unit_us = time_unit_days * 86_400e6
    first_day = pl.col("day").min().cast(pl.Datetime("us"))
    return (
        _transactions(calibration)
        .group_by("account_id")
        .agg(
            (pl.len() - 1).cast(pl.Int64).alias("frequency"),
            ((pl.col("day").max() - pl.col("day").min()).dt.total_days() / time_unit_days).alias(
                "recency"
            ),
            ((pl.lit(_origin(calibration_end)) - first_day).dt.total_microseconds() / unit_us)
            .clip(lower_bound=0.0)
            .alias("T"),
            # lifetimes convention: mean of the repeat transactions, the first one excluded.
            pl.col("amount").sort_by("day").slice(1).mean().fill_null(0.0).alias("monetary_value"),
        )
        .sort("account_id")
    )


def holdout_counts(
    orders: pl.DataFrame, calibration_end: date | datetime, accounts: pl.Series
) -> tuple[pl.DataFrame, float]:
    """Count each cohort account's transactions after calibration; return them and the days."""
    later = orders.filter(pl.col("ordered_at") > cutoff(calibration_end))
    counts = (
        _transactions(later).group_by("account_id").agg(pl.len().cast(pl.Float64).alias("actual"))
    )
    last = later.select(pl.col("ordered_at").max().dt.date()).item()
    days = float((last - _origin(calibration_end).date()).days)
    cohort = pl.DataFrame({"account_id": accounts})
    return cohort.join(counts, on="account_id", how="left").fill_null(0.0), days
