"""Map a raw source frame onto its canonical dataset (raw -> typed).

Columns are renamed by the config's mapping, values mapped, and every column cast to the
canonical schema. A value that cannot be cast becomes null and the row carries the reason in
``_reason``, so validation can quarantine it instead of losing it.
"""

from __future__ import annotations

import polars as pl

from tasks.config import SourceConfig
from tasks.errors import ConfigError, SourceError
from tasks.schemas import TS, Dataset
from tasks.sources.latest import LATEST, after_rename, latest_expr, source_column
from tasks.sources.plan import REASON, ROW, format_list
from tasks.sources.presets import optional_preset_columns

_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
# ISO 8601 with an offset or Z: an absolute time, so the source's timezone does not apply
_OFFSET_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%#z",
    "%Y-%m-%d %H:%M:%S%#z",
)


def _rename(df: pl.DataFrame, ds: Dataset, src: SourceConfig, what: str) -> pl.DataFrame:
    unknown = sorted(set(src.columns) - set(ds.schema.names()))
    if unknown:
        raise ConfigError(
            f"[sources.{ds.name}.columns] maps unknown canonical column {unknown[0]!r}."
        )
    optional = optional_preset_columns(src)  # a preset's optional columns may be absent
    missing_src = [s for s in src.columns.values() if s not in df.columns and s not in optional]
    if missing_src and df.width:
        raise SourceError(f"{what} has no column {missing_src[0]!r} (named in its column mapping).")
    latest = source_column(src)
    if latest is not None and latest not in df.columns and df.width:
        raise SourceError(f"{what} has no column {latest!r} (named by latest_by).")
    df = df.rename({s: c for c, s in src.columns.items() if s in df.columns and s != c})
    missing = [c for c in ds.required if c not in df.columns]
    if missing:
        raise SourceError(
            f"{what} has no column {missing[0]!r}, which the {ds.name} dataset requires; "
            f"map it in [sources.{ds.name}.columns]."
        )
    return df


def _to_utc(ts: pl.Expr, tz: str | None) -> pl.Expr:
    """Read naive local times in ``tz`` (when given) as naive UTC."""
    if not tz:
        return ts
    local = ts.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def _parse_datetime(col: pl.Expr, fmt: str | list[str] | None, tz: str | None) -> pl.Expr:
    """Parse text with the source's formats (or ISO 8601) into naive UTC; failures are null."""
    parsed = []
    for f in format_list(fmt) or [*_OFFSET_FORMATS, *_NAIVE_FORMATS]:
        ts = col.str.to_datetime(f, strict=False, time_unit="us", exact=True)
        if "%z" in f or "%:z" in f or "%#z" in f:
            parsed.append(ts.dt.replace_time_zone(None))  # Polars has converted it to UTC
        elif f == "%s":
            parsed.append(ts)  # Unix seconds are UTC
        else:
            parsed.append(_to_utc(ts, tz))
    return pl.coalesce(parsed)


def _parse_date(col: pl.Expr, fmt: str | list[str] | None) -> pl.Expr:
    formats = format_list(fmt)
    if not formats:
        return _parse_datetime(col, None, None).dt.date()
    return pl.coalesce([col.str.to_date(f, strict=False, exact=True) for f in formats])


def _cast_expr(name: str, dtype: pl.DataType, current: pl.DataType, src: SourceConfig) -> pl.Expr:
    col = pl.col(name)
    text = current == pl.String
    if current.is_numeric() and dtype in (TS, pl.Date):
        text, col = True, col.cast(pl.String)  # a number is no date: parse it as text
    if text:
        col = col.str.strip_chars()
        col = pl.when(col == "").then(None).otherwise(col)
        if dtype == TS:
            return _parse_datetime(col, src.datetime_format, src.timezone)
        if dtype == pl.Date:
            return _parse_date(col, src.date_format)
        if dtype == pl.Int64:
            out = col.cast(pl.Float64, strict=False)
            return pl.when(out == out.round(0)).then(out).otherwise(None).cast(pl.Int64)
        return col.cast(dtype, strict=False)
    if isinstance(current, pl.Datetime) and current.time_zone:
        utc = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)  # absolute: no tz
        return utc.dt.date() if dtype == pl.Date else utc.cast(dtype)
    if dtype == pl.Date and isinstance(current, pl.Datetime):
        return col.dt.date()
    out = col.cast(dtype, strict=False)
    return _to_utc(out, src.timezone) if dtype == TS else out


def _describe_type(dtype: pl.DataType, src: SourceConfig) -> str:
    if dtype == pl.Int64:
        return "a whole number"
    if dtype == pl.Float64:
        return "a number"
    if dtype == pl.Date:
        return "a date" + (" in date_format" if src.date_format else " (YYYY-MM-DD)")
    if isinstance(dtype, pl.Datetime):
        return "a date-time" + (
            " in datetime_format" if src.datetime_format else " (YYYY-MM-DD[ HH:MM[:SS]])"
        )
    return str(dtype)


def _map_values(df: pl.DataFrame, ds: Dataset, src: SourceConfig) -> pl.DataFrame:
    """Apply the config's value maps (e.g. P1 -> urgent), then case-fold the enumerations."""
    unknown = sorted(c for c in src.values if c not in ds.schema and c not in df.columns)
    if unknown:
        raise ConfigError(
            f"[sources.{ds.name}.values] maps values of unknown column {unknown[0]!r}."
        )
    exprs = [
        pl.col(c).cast(pl.String).str.strip_chars().replace(mapping).alias(c)
        for c, mapping in src.values.items()
        if c in df.columns
    ]
    df = df.with_columns(exprs) if exprs else df
    folds = [
        pl.col(c).cast(pl.String).str.strip_chars().str.to_lowercase()
        for c in ds.value_sets
        if c in df.columns
    ]
    return df.with_columns(folds) if folds else df


def _nulls(df: pl.DataFrame, src: SourceConfig) -> pl.DataFrame:
    """Read the source's ``null_values`` (e.g. "?", "N/A") in text columns as missing."""
    if not src.null_values:
        return df
    marks = pl.Series(src.null_values, dtype=pl.String)
    text = [c for c, t in df.schema.items() if t == pl.String and not c.startswith("_")]
    return df.with_columns(
        pl.when(pl.col(c).str.strip_chars().is_in(marks)).then(None).otherwise(pl.col(c)).alias(c)
        for c in text
    )


def _latest(df: pl.DataFrame, src: SourceConfig) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """Return the typed ``latest_by`` column and its cast failure (empty without latest_by)."""
    col = after_rename(src)
    if col is None or col not in df.columns:
        return [], []
    cur = df.schema[col]
    text = pl.col(col).cast(pl.String).str.strip_chars()
    text = pl.when(text == "").then(None).otherwise(text)
    typed = latest_expr(col, cur, _parse_datetime(text, src.datetime_format, src.timezone))
    bad = text.is_not_null() & typed.is_null()
    label = src.latest_by or col
    why = pl.format(
        "{}: '{}' is not " + _describe_type(TS, src), pl.lit(label), text.str.slice(0, 40)
    )
    return [typed.alias(LATEST)], [pl.when(bad).then(why)]


def to_canonical(raw: pl.DataFrame, ds: Dataset, src: SourceConfig, what: str) -> pl.DataFrame:
    """Map a raw source frame onto the canonical schema, recording cast failures per row."""
    df = _map_values(_nulls(_rename(raw, ds, src, what), src), ds, src)
    if ROW not in df.columns:
        df = df.with_row_index(ROW, offset=1)
    keep_extra = ds.name == "accounts"  # custom CRM attributes become usable as measures
    skip = {after_rename(src)}  # the latest_by column is carried as LATEST, not as an attribute
    extra = [
        c
        for c in df.columns
        if c not in ds.schema and keep_extra and not c.startswith("_") and c not in skip
    ]
    latest, problems = _latest(df, src)
    casts: list[pl.Expr] = []
    for c, dtype in ds.schema.items():
        if c not in df.columns:
            casts.append(pl.lit(None, dtype=dtype).alias(c))
            continue
        cur = df.schema[c]
        if cur == dtype:
            casts.append(pl.col(c))
            continue
        cast = _cast_expr(c, dtype, cur, src)
        casts.append(cast.alias(c))
        bad = pl.col(c).is_not_null() & cast.is_null()
        if cur == pl.String:
            bad = bad & (pl.col(c).str.strip_chars() != "")
        text = pl.col(c).cast(pl.String).str.slice(0, 40)
        problems.append(
            pl.when(bad).then(
                pl.format("{}: '{}' is not " + _describe_type(dtype, src), pl.lit(c), text)
            )
        )
    reason = (
        pl.concat_str(problems, separator="; ", ignore_nulls=True) if problems else pl.lit(None)
    )
    out = df.select(
        pl.col(ROW).cast(pl.Int64),
        *casts,
        *[pl.col(c) for c in extra],
        *latest,
        pl.when(reason != "").then(reason).alias(REASON),
    )
    return out.with_columns(pl.col(REASON).cast(pl.String))


def empty_typed(ds: Dataset) -> pl.DataFrame:
    """Return an empty frame of the dataset's typed columns, with row number and reason."""
    return pl.DataFrame(schema={ROW: pl.Int64, **dict(ds.schema), REASON: pl.String})
