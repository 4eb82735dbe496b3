"""Read each configured source and map it onto its canonical dataset (raw -> typed).

Every source is read as it is, renamed by the config's column mapping, value-mapped, and cast
to the canonical schema. A value that cannot be cast becomes null and the row carries the
reason in ``_reason``, so validation can quarantine it instead of losing it.
"""

from __future__ import annotations

import glob
import io
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb
import polars as pl
import psycopg

from tasks.config import Config, SourceConfig
from tasks.errors import ConfigError, SourceError
from tasks.schemas import DATASETS, Dataset

ROW = "_row"  # the row's position in its source, kept through validation for quarantine files
REASON = "_reason"  # why a row is rejected (null while it is fine)

_DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Window:
    """The point in time a run looks from: rows after ``end`` do not exist for it."""

    as_of: date
    run_time: datetime  # wall-clock time of the run: later timestamps are impossible, not future

    @property
    def end(self) -> datetime:
        return datetime.combine(self.as_of, time.max).replace(microsecond=999999)

    def since(self, days: int) -> datetime:
        return datetime.combine(self.as_of - timedelta(days=days - 1), time.min)


def resolve_uri(uri: str, cfg: Config) -> str:
    """Expand ``${ENV}`` references so credentials stay out of the config file."""

    def _env(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise ConfigError(
                f"Environment variable {m.group(1)} named in a source URI is not set."
            )
        return value

    return _ENV_REF.sub(_env, uri)


def _describe(name: str, src: SourceConfig) -> str:
    where = src.table or ("query" if src.query else "")
    return f"{name} source {_ENV_REF.sub('***', src.uri)}" + (f" ({where})" if where else "")


def _db_path(uri: str, scheme: str, cfg: Config) -> Path:
    rest = uri[len(scheme) + 3 :]  # after "scheme://"
    if not rest.startswith("/"):
        raise ConfigError(f"{uri}: database URLs take three slashes, e.g. {scheme}:///data/crm.db.")
    rest = rest[1:]
    return Path(rest) if rest.startswith("/") else cfg.path(rest)


def _sql(src: SourceConfig, name: str) -> str:
    if src.query:
        return src.query
    table = src.table or name
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", table):
        raise ConfigError(f"table {table!r} for the {name} source is not a plain table name.")
    return f"select * from {table}"


def _read_duckdb(path: Path, sql: str) -> pl.DataFrame:
    if not path.exists():
        raise FileNotFoundError(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def _read_sqlite(path: Path, sql: str) -> pl.DataFrame:
    if not path.exists():
        raise FileNotFoundError(path)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    # SQLite columns have no fixed type: read as text and let the canonical cast decide.
    data = {n: [None if r[i] is None else str(r[i]) for r in rows] for i, n in enumerate(names)}
    return pl.DataFrame(data, schema=dict.fromkeys(names, pl.String))


def _read_postgres(uri: str, sql: str) -> pl.DataFrame:
    with psycopg.connect(uri, connect_timeout=10) as con, con.cursor() as cur:
        cur.execute(sql)
        names = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def _read_text(path: Path, encoding: str) -> bytes:
    raw = path.read_bytes()
    enc = encoding.lower().replace("_", "-")
    if enc in ("utf-8", "utf8", "utf-8-sig"):
        text = raw.decode("utf-8-sig")  # drops a BOM when there is one
    else:
        text = raw.decode(encoding)
    return text.encode("utf-8")


def _read_file(path: Path, src: SourceConfig) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.read_parquet(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        data = _read_text(path, src.encoding)
        if not data.strip():
            return pl.DataFrame()
        return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    if suffix in (".csv", ".tsv", ".txt"):
        data = _read_text(path, src.encoding)
        if not data.strip():
            return pl.DataFrame()
        return pl.read_csv(io.BytesIO(data), separator=src.separator, infer_schema=False)
    raise ConfigError(f"{path}: unknown file type {suffix!r}; use .csv, .parquet or .jsonl.")


def _read_files(src: SourceConfig, cfg: Config) -> pl.DataFrame:
    pattern = str(cfg.path(src.uri))
    paths = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
    if not paths:
        raise FileNotFoundError(pattern)
    frames = [_read_file(Path(p), src) for p in paths]
    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def read_source(name: str, src: SourceConfig, cfg: Config) -> pl.DataFrame:
    """Read one source as it is (the raw dataset), raising one clear sentence on failure."""
    uri = resolve_uri(src.uri, cfg)
    what = _describe(name, src)
    try:
        if uri.startswith("duckdb://"):
            return _read_duckdb(_db_path(uri, "duckdb", cfg), _sql(src, name))
        if uri.startswith("sqlite://"):
            return _read_sqlite(_db_path(uri, "sqlite", cfg), _sql(src, name))
        if uri.startswith(("postgresql://", "postgres://")):
            return _read_postgres(uri, _sql(src, name))
        return _read_files(src, cfg)
    except (ConfigError, SourceError):
        raise
    except FileNotFoundError as err:
        missing = err.filename or (err.args[0] if err.args else uri)
        raise SourceError(f"{what}: file {missing} does not exist.") from None
    except UnicodeDecodeError as err:
        raise SourceError(
            f"{what}: text is not valid {src.encoding} ({err.reason} at byte {err.start}); "
            "set encoding in the source's config."
        ) from None
    except (duckdb.Error, sqlite3.Error, psycopg.Error) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(f"{what}: {_ENV_REF.sub('***', first)}.") from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(f"{what} cannot be read: {first}.") from None


def _rename(df: pl.DataFrame, ds: Dataset, src: SourceConfig, what: str) -> pl.DataFrame:
    unknown = sorted(set(src.columns) - set(ds.schema.names()))
    if unknown:
        raise ConfigError(
            f"[sources.{ds.name}.columns] maps unknown canonical column {unknown[0]!r}."
        )
    missing_src = [s for s in src.columns.values() if s not in df.columns]
    if missing_src and df.width:
        raise SourceError(f"{what} has no column {missing_src[0]!r} (named in its column mapping).")
    df = df.rename({s: c for c, s in src.columns.items() if s in df.columns and s != c})
    missing = [c for c in ds.required if c not in df.columns]
    if missing:
        raise SourceError(
            f"{what} has no column {missing[0]!r}, which the {ds.name} dataset requires; "
            f"map it in [sources.{ds.name}.columns]."
        )
    return df


def _parse_datetime(col: pl.Expr, fmt: str | None) -> pl.Expr:
    if fmt:
        return col.str.to_datetime(fmt, strict=False, time_unit="us")
    return pl.coalesce(
        [
            col.str.to_datetime(f, strict=False, time_unit="us", exact=True)
            for f in _DATETIME_FORMATS
        ]
    )


def _cast_expr(name: str, dtype: pl.DataType, current: pl.DataType, src: SourceConfig) -> pl.Expr:
    col = pl.col(name)
    if current == pl.String:
        col = col.str.strip_chars()
        col = pl.when(col == "").then(None).otherwise(col)
        if dtype == pl.Datetime("us"):
            out = _parse_datetime(col, src.datetime_format)
        elif dtype == pl.Date:
            fmt = src.date_format
            out = (
                col.str.to_date(fmt, strict=False) if fmt else _parse_datetime(col, None).dt.date()
            )
        elif dtype == pl.Int64:
            out = col.cast(pl.Float64, strict=False)
            out = pl.when(out == out.round(0)).then(out).otherwise(None).cast(pl.Int64)
        else:
            out = col.cast(dtype, strict=False)
    elif dtype == pl.Date and isinstance(current, pl.Datetime):
        out = col.dt.date()
    elif isinstance(dtype, pl.Datetime) and isinstance(current, pl.Datetime):
        out = col.dt.replace_time_zone(None) if current.time_zone else col
        out = out.cast(dtype)
    else:
        out = col.cast(dtype, strict=False)
    if src.timezone and isinstance(dtype, pl.Datetime):
        out = out.dt.replace_time_zone(src.timezone, ambiguous="earliest", non_existent="null")
        out = out.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return out


def _describe_type(dtype: pl.DataType) -> str:
    if dtype in (pl.Int64, pl.Float64):
        return "a number"
    if dtype == pl.Date:
        return "a date"
    if isinstance(dtype, pl.Datetime):
        return "a date-time"
    return str(dtype)


def to_canonical(raw: pl.DataFrame, ds: Dataset, src: SourceConfig, what: str) -> pl.DataFrame:
    """Map a raw source frame onto the canonical schema, recording cast failures per row."""
    df = _rename(raw, ds, src, what)
    # Value maps (e.g. P1 -> urgent) and case folding of enumerations happen before the cast.
    exprs: list[pl.Expr] = []
    for c, mapping in src.values.items():
        if c in df.columns:
            exprs.append(pl.col(c).cast(pl.String).replace(mapping).alias(c))
    df = df.with_columns(exprs) if exprs else df
    folds = [
        pl.col(c).cast(pl.String).str.strip_chars().str.to_lowercase()
        for c in ds.value_sets
        if c in df.columns
    ]
    df = df.with_columns(folds) if folds else df
    keep_extra = ds.name == "accounts"  # custom CRM attributes become usable as measures
    extra = [c for c in df.columns if c not in ds.schema and keep_extra and not c.startswith("_")]
    casts: list[pl.Expr] = []
    problems: list[pl.Expr] = []
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
        problems.append(
            pl.when(bad).then(
                pl.format(
                    "{}: '{}' is not " + _describe_type(dtype),
                    pl.lit(c),
                    pl.col(c).cast(pl.String).str.slice(0, 40),
                )
            )
        )
    reason = (
        pl.concat_str(problems, separator="; ", ignore_nulls=True) if problems else pl.lit(None)
    )
    out = df.with_row_index(ROW, offset=1).select(
        pl.col(ROW).cast(pl.Int64),
        *casts,
        *[pl.col(c) for c in extra],
        pl.when(reason != "").then(reason).alias(REASON),
    )
    return out.with_columns(pl.col(REASON).cast(pl.String))


def _cutoff_filter(
    df: pl.DataFrame, ds: Dataset, window: Window, lookback_days: int | None
) -> pl.DataFrame:
    if ds.time_column is None:
        return df
    t = pl.col(ds.time_column)
    # Null and impossible (after the run time) timestamps stay, so validation quarantines them.
    keep = t.is_null() | (t <= window.end) | (t > window.run_time)
    if lookback_days:
        keep = keep & (t.is_null() | (t >= window.since(lookback_days)))
    return df.filter(keep)


def lookback_days(dataset: str, cfg: Config) -> int | None:
    """Return how far back a run needs ``dataset`` (None: all of it)."""
    if dataset == "usage_events":
        return 2 * cfg.windows.usage_days  # this window and the one before it, for the trend
    return None


def extract_dataset(
    name: str, cfg: Config, window: Window, reader: Callable[..., pl.DataFrame] = read_source
) -> pl.DataFrame:
    """Read, map and cast one dataset as of ``window``; rows after it are not read."""
    src = cfg.sources[name]
    ds = DATASETS[name]
    raw = reader(name, src, cfg)
    if raw.width == 0:
        if ds.name == "accounts":
            raise SourceError(f"{_describe(name, src)} is empty: there are no accounts to score.")
        return _empty_typed(ds)
    typed = to_canonical(raw, ds, src, _describe(name, src))
    return _cutoff_filter(typed, ds, window, lookback_days(name, cfg))


def _empty_typed(ds: Dataset) -> pl.DataFrame:
    return pl.DataFrame(schema={ROW: pl.Int64, **dict(ds.schema), REASON: pl.String})
