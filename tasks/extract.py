"""Read each configured source and map it onto its canonical dataset (raw -> typed).

Every source is read as it is, renamed by the config's column mapping, value-mapped, and cast
to the canonical schema. A value that cannot be cast becomes null and the row carries the
reason in ``_reason``, so validation can quarantine it instead of losing it.

Databases and Parquet files are asked only for what a run needs (a ``ReadPlan``): the mapped
canonical columns, and the rows whose time column can fall in the run's window (with a day of
margin for time zones). The exact point-in-time filter runs after the cast, in Polars.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlsplit

import duckdb
import httpx
import polars as pl
import psycopg
from prefect.blocks.system import Secret

from tasks.config import Config, SourceConfig
from tasks.errors import ConfigError, SourceError
from tasks.schemas import DATASETS, TS, Dataset

# the row's position in its file (for a database: in what was read), kept for quarantine files
ROW = "_row"
REASON = "_reason"  # why a row is rejected (null while it is fine)

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
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MARGIN = timedelta(days=1)  # covers any offset between a source's local time and UTC
_ISO_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_PG_TEMPORAL = {1082, 1114, 1184}  # date, timestamp, timestamptz
_PG_TEXT = {19, 25, 1042, 1043}  # name, text, char, varchar


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


@dataclass(frozen=True)
class ReadPlan:
    """What a run needs from one source; databases and Parquet scans apply it at the source.

    A row is needed when its time column is null, not comparable (text in another format),
    in ``[start, end]``, or after ``keep_after`` (impossible dates, kept for quarantine).
    """

    columns: tuple[str, ...] | None = None  # source columns to read; None reads all of them
    time_column: str | None = None  # the source column that places a row in time
    start: datetime | None = None
    end: datetime | None = None
    keep_after: datetime | None = None
    iso_text: bool = True  # text timestamps start with YYYY-MM-DD, so they sort as text


@dataclass(frozen=True)
class _Secrets:
    """The secret values of one source, to pass to the driver and to mask in messages."""

    password: str | None
    values: tuple[str, ...]

    def mask(self, text: str) -> str:
        for v in sorted(self.values, key=len, reverse=True):
            text = text.replace(v, "***")
        return text


def resolve_password(name: str, src: SourceConfig) -> str | None:
    """Return the source's password from ``password_env`` or ``password_secret``, if named."""
    if src.password_env:
        value = os.environ.get(src.password_env)
        if value is None:
            raise ConfigError(
                f"[sources.{name}] password_env names {src.password_env}, which is not set."
            )
        return value
    if src.password_secret:
        try:
            block = cast(Secret, Secret.load(src.password_secret))
            return str(block.get())
        except (ValueError, OSError, httpx.HTTPError, RuntimeError) as err:
            raise ConfigError(
                f"[sources.{name}] password_secret names Prefect Secret block "
                f"{src.password_secret!r}, which cannot be loaded ({type(err).__name__})."
            ) from None
    return None


def resolve_uri(uri: str) -> str:
    """Expand ``${ENV}`` references so credentials stay out of the config file."""

    def _env(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise ConfigError(
                f"Environment variable {m.group(1)} named in a source URI is not set."
            )
        return value

    return _ENV_REF.sub(_env, uri)


def _secrets(name: str, src: SourceConfig, uri: str) -> _Secrets:
    password = resolve_password(name, src)
    values = [os.environ.get(m.group(1), "") for m in _ENV_REF.finditer(src.uri)]
    if uri.startswith(("postgresql://", "postgres://")):
        try:
            in_uri = urlsplit(uri).password
        except ValueError:
            in_uri = None
        values += [in_uri or "", unquote(in_uri or "")]
    values.append(password or "")
    return _Secrets(password, tuple(v for v in set(values) if v))


def describe_source(name: str, src: SourceConfig) -> str:
    """Name a source in messages, without any credential (``orders source data/o.csv (orders)``)."""
    uri = _ENV_REF.sub("***", src.uri)
    uri = re.sub(r"^([a-z]+://[^:/@]*):[^@/]*@", r"\1:***@", uri)
    where = src.table or ("query" if src.query else "")
    return f"{name} source {uri}" + (f" ({where})" if where else "")


def db_path(uri: str, cfg: Config) -> Path:
    """Return the file of a ``duckdb:///`` or ``sqlite:///`` URL (relative to the config)."""
    scheme, rest = uri.split("://", 1)
    if not rest.startswith("/"):
        raise ConfigError(f"{uri}: database URLs take three slashes, e.g. {scheme}:///data/crm.db.")
    rest = rest[1:]
    return Path(rest) if rest.startswith("/") else cfg.path(rest)


def source_query(src: SourceConfig, name: str) -> str:
    """Return the SQL that reads the source: its query, or every row of its table."""
    if src.query:
        return src.query.strip().rstrip(";")
    table = src.table or name
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", table):
        raise ConfigError(f"table {table!r} for the {name} source is not a plain table name.")
    return f"select * from {table}"


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _time_sql(plan: ReadPlan, kind: str | None, dialect: str) -> str | None:
    """Return the SQL condition that keeps the rows ``plan`` needs (None: keep every row)."""
    t = plan.time_column
    if t is None or (plan.start is None and plan.end is None):
        return None
    c = _quote(t)
    keep = [f"{c} is null"]
    if kind == "temporal":
        lo, hi, after = (f"timestamp '{d:%Y-%m-%d %H:%M:%S}'" for d in _bounds(plan))
        upper, lower = f"({c} <= {hi} or {c} > {after})", f"{c} >= {lo}"
    elif kind == "text" and plan.iso_text:
        # ISO text sorts like time when compared by bytes; any other text is kept for the cast
        keep.append(
            {
                "duckdb": f"not regexp_matches({c}, '{_ISO_DATE}')",
                "postgres": f"{c} !~ '{_ISO_DATE}'",
                "sqlite": f"not ({c} glob '{'[0-9]' * 4}-[0-9][0-9]-[0-9][0-9]*')",
            }[dialect]
        )
        c = f'{c} collate "C"' if dialect == "postgres" else c
        lo, hi, after = (f"'{d:%Y-%m-%d}'" for d in _bounds(plan, day_after_end=True))
        upper, lower = f"({c} < {hi} or {c} >= {after})", f"{c} >= {lo}"
    else:
        return None
    need = " and ".join(
        cond
        for cond, used in ((upper, plan.end is not None), (lower, plan.start is not None))
        if used
    )
    return "(" + " or ".join([*keep, f"({need})"]) + ")"


def _bounds(plan: ReadPlan, day_after_end: bool = False) -> tuple[datetime, datetime, datetime]:
    far = datetime(1, 1, 1)
    end = plan.end or far
    return (
        plan.start or far,
        end + timedelta(days=1) if day_after_end and plan.end else end,
        plan.keep_after or far,
    )


def select_sql(base: str, kinds: dict[str, str], plan: ReadPlan, dialect: str) -> str:
    """Wrap a table or query so the database returns only the columns and rows a run needs."""
    wanted = [c for c in kinds if plan.columns is None or c in plan.columns]
    cols = ", ".join(_quote(c) for c in wanted) if wanted else "*"
    where = _time_sql(plan, kinds.get(plan.time_column or ""), dialect)
    return f"select {cols} from ({base}) as src" + (f" where {where}" if where else "")


def _duckdb_kind(type_name: str) -> str:
    if type_name.startswith(("TIMESTAMP", "DATE")):
        return "temporal"
    return "text" if type_name == "VARCHAR" else "other"


def _read_duckdb(path: Path, base: str, plan: ReadPlan) -> pl.DataFrame:
    if not path.exists():
        raise FileNotFoundError(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rel = con.sql(base)
        kinds = {c: _duckdb_kind(str(t)) for c, t in zip(rel.columns, rel.types, strict=True)}
        return con.sql(select_sql(base, kinds, plan, "duckdb")).pl()
    finally:
        con.close()


def _read_sqlite(path: Path, base: str, plan: ReadPlan) -> pl.DataFrame:
    if not path.exists():
        raise FileNotFoundError(path)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [d[0] for d in con.execute(f"select * from ({base}) limit 0").description]
        # SQLite columns have no fixed type: treat all as text (non-ISO values are kept)
        cur = con.execute(select_sql(base, dict.fromkeys(names, "text"), plan, "sqlite"))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    # Read every value as text and let the canonical cast decide.
    data = {n: [None if r[i] is None else str(r[i]) for r in rows] for i, n in enumerate(names)}
    return pl.DataFrame(data, schema=dict.fromkeys(names, pl.String))


def _pg_kind(type_code: int) -> str:
    if type_code in _PG_TEMPORAL:
        return "temporal"
    return "text" if type_code in _PG_TEXT else "other"


def _read_postgres(uri: str, password: str | None, base: str, plan: ReadPlan) -> pl.DataFrame:
    # The password goes to the driver as a keyword (None: none), never into a shown string.
    with psycopg.connect(uri, connect_timeout=10, application_name="chs", password=password) as con:
        con.read_only = True  # a query from the config can never change the source
        with con.cursor() as cur:
            cur.execute(f"select * from ({base}) as src limit 0")
            kinds = {d.name: _pg_kind(d.type_code) for d in cur.description or []}
            cur.execute(select_sql(base, kinds, plan, "postgres"))
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


def _bad_csv_row(data: bytes, separator: str, name: str) -> str:
    rows = csv.reader(io.StringIO(data.decode("utf-8")), delimiter=separator)
    width = len(next(rows, []))
    for row in rows:
        if len(row) > width:
            return (
                f"line {rows.line_num} of {name} has {len(row)} fields but the header has "
                f"{width}; quote values that contain the separator"
            )
    return f"{name} is not valid CSV"


def _bad_json_line(data: bytes, name: str) -> str:
    for i, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except ValueError:
                return f"line {i} of {name} is not a JSON object"
    return f"the lines of {name} do not share one structure"


def _read_file(path: Path, src: SourceConfig) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        data = _read_text(path, src.encoding)
        if not data.strip():
            return pl.DataFrame()
        try:
            return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        except pl.exceptions.PolarsError:
            raise SourceError(_bad_json_line(data, path.name)) from None
    if suffix in (".csv", ".tsv", ".txt"):
        data = _read_text(path, src.encoding)
        if not data.strip():
            return pl.DataFrame()
        try:
            return pl.read_csv(io.BytesIO(data), separator=src.separator, infer_schema=False)
        except pl.exceptions.ComputeError:
            raise SourceError(_bad_csv_row(data, src.separator, path.name)) from None
    raise ConfigError(f"{path}: unknown file type {suffix!r}; use .csv, .parquet or .jsonl.")


def _scan_parquet(path: Path, plan: ReadPlan, offset: int) -> tuple[pl.LazyFrame, int]:
    lf = pl.scan_parquet(path, row_index_name=ROW, row_index_offset=offset)
    schema = lf.collect_schema()
    n = pl.scan_parquet(path).select(pl.len()).collect().item()  # from the footer only
    keep = [c for c in schema.names() if c == ROW or plan.columns is None or c in plan.columns]
    lf = lf.select(keep)
    pred = _parquet_filter(plan, schema.get(plan.time_column or ""))
    return (lf.filter(pred) if pred is not None else lf), n


def _parquet_filter(plan: ReadPlan, dtype: pl.DataType | None) -> pl.Expr | None:
    if plan.time_column is None or dtype is None or not (dtype == pl.Date or dtype == pl.Datetime):
        return None

    def lit(d: datetime) -> pl.Expr:
        if dtype == pl.Date:
            return pl.lit(d.date())
        tz = getattr(dtype, "time_zone", None)
        return pl.lit(d).dt.replace_time_zone(tz) if tz else pl.lit(d)

    t = pl.col(plan.time_column)
    lo, hi, after = _bounds(plan)
    need = pl.lit(True)
    if plan.end is not None:
        need = (t <= lit(hi)) | (t > lit(after))
    if plan.start is not None:
        need = need & (t >= lit(lo))
    return t.is_null() | need


def _read_files(src: SourceConfig, cfg: Config, plan: ReadPlan) -> pl.DataFrame:
    pattern = str(cfg.path(src.uri))
    is_glob = any(c in pattern for c in "*?[")
    paths = sorted(glob.glob(pattern)) if is_glob else [pattern]
    if not paths:
        raise SourceError(f"no file matches {pattern}")
    frames: list[pl.LazyFrame] = []
    offset = 1  # row numbers run on across the files of a glob, in name order
    for p in paths:
        if Path(p).suffix.lower() == ".parquet":
            lf, n = _scan_parquet(Path(p), plan, offset)
        else:
            df = _read_file(Path(p), src)
            if not df.width:
                continue
            lf, n = df.with_row_index(ROW, offset=offset).lazy(), df.height
        frames.append(lf)
        offset += n
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed").collect()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].rstrip(".") if text else type(err).__name__


def read_source(
    name: str, src: SourceConfig, cfg: Config, plan: ReadPlan | None = None
) -> pl.DataFrame:
    """Read one source as it is (the raw dataset), raising one clear sentence on failure."""
    plan = plan or ReadPlan()
    uri = resolve_uri(src.uri)
    secrets = _secrets(name, src, uri)
    what = describe_source(name, src)
    try:
        if uri.startswith("duckdb://"):
            return _read_duckdb(db_path(uri, cfg), source_query(src, name), plan)
        if uri.startswith("sqlite://"):
            return _read_sqlite(db_path(uri, cfg), source_query(src, name), plan)
        if uri.startswith(("postgresql://", "postgres://")):
            return _read_postgres(uri, secrets.password, source_query(src, name), plan)
        return _read_files(src, cfg, plan)
    except ConfigError:
        raise
    except SourceError as err:
        raise SourceError(f"{what}: {str(err).rstrip('.')}.") from None
    except FileNotFoundError as err:
        missing = err.filename or (err.args[0] if err.args else uri)
        raise SourceError(f"{what}: file {missing} does not exist.") from None
    except UnicodeDecodeError as err:
        raise SourceError(
            f"{what}: text is not valid {src.encoding} ({err.reason} at byte {err.start}); "
            "set encoding in the source's config."
        ) from None
    except (duckdb.Error, sqlite3.Error, psycopg.Error) as err:
        transient = isinstance(err, psycopg.OperationalError)  # connection refused, server gone
        raise SourceError(
            f"{what}: {secrets.mask(_first_line(err))}.", transient=transient
        ) from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise SourceError(f"{what} cannot be read: {secrets.mask(_first_line(err))}.") from None


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


def _formats(fmt: str | list[str] | None) -> list[str]:
    return [fmt] if isinstance(fmt, str) else list(fmt or [])


def _to_utc(ts: pl.Expr, tz: str | None) -> pl.Expr:
    """Read naive local times in ``tz`` (when given) as naive UTC."""
    if not tz:
        return ts
    local = ts.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def _parse_datetime(col: pl.Expr, fmt: str | list[str] | None, tz: str | None) -> pl.Expr:
    """Parse text with the source's formats (or ISO 8601) into naive UTC; failures are null."""
    parsed = []
    for f in _formats(fmt) or [*_OFFSET_FORMATS, *_NAIVE_FORMATS]:
        ts = col.str.to_datetime(f, strict=False, time_unit="us", exact=True)
        if "%z" in f or "%:z" in f or "%#z" in f:
            parsed.append(ts.dt.replace_time_zone(None))  # Polars has converted it to UTC
        elif f == "%s":
            parsed.append(ts)  # Unix seconds are UTC
        else:
            parsed.append(_to_utc(ts, tz))
    return pl.coalesce(parsed)


def _parse_date(col: pl.Expr, fmt: str | list[str] | None) -> pl.Expr:
    formats = _formats(fmt)
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


def to_canonical(raw: pl.DataFrame, ds: Dataset, src: SourceConfig, what: str) -> pl.DataFrame:
    """Map a raw source frame onto the canonical schema, recording cast failures per row."""
    df = _map_values(_rename(raw, ds, src, what), ds, src)
    if ROW not in df.columns:
        df = df.with_row_index(ROW, offset=1)
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


def plan_read(name: str, cfg: Config, window: Window) -> ReadPlan:
    """Return the source columns and the time range a run needs from ``name``, with a margin."""
    src, ds = cfg.sources[name], DATASETS[name]
    columns = (
        None  # accounts keep every column: custom CRM attributes can be measures
        if name == "accounts"
        else tuple(dict.fromkeys(src.columns.get(c, c) for c in ds.schema.names()))
    )
    if ds.time_column is None:
        return ReadPlan(columns)
    days = lookback_days(name, cfg)
    start = window.since(days) - _MARGIN if days else None
    # from the start of the run's day: a re-run later that day asks for the same rows (the
    # exact cut at the run time is point_in_time's), so the extraction cache can serve it
    run_day = datetime.combine(window.run_time.date(), time.min)
    end, keep_after = window.end + _MARGIN, run_day - _MARGIN
    gap = keep_after > end  # none when the run is as of today: every later row is impossible
    return ReadPlan(
        columns,
        src.columns.get(ds.time_column, ds.time_column),
        start,
        end if gap else None,
        keep_after if gap else None,
        iso_text=all(f.startswith("%Y-%m-%d") for f in _formats(src.datetime_format)),
    )


def read_typed(
    name: str, cfg: Config, plan: ReadPlan, reader: Callable[..., pl.DataFrame] = read_source
) -> pl.DataFrame:
    """Read what ``plan`` asks of one source and map and cast it to its canonical dataset."""
    src = cfg.sources[name]
    ds = DATASETS[name]
    raw = reader(name, src, cfg, plan)
    what = describe_source(name, src)
    if raw.width == 0:
        if ds.name == "accounts":
            raise SourceError(f"{what} is empty: there are no accounts to score.")
        return _empty_typed(ds)
    return to_canonical(raw, ds, src, what)


def point_in_time(typed: pl.DataFrame, name: str, cfg: Config, window: Window) -> pl.DataFrame:
    """Keep the rows a run as of ``window`` sees (and the impossible ones, for quarantine)."""
    return _cutoff_filter(typed, DATASETS[name], window, lookback_days(name, cfg))


def extract_dataset(
    name: str, cfg: Config, window: Window, reader: Callable[..., pl.DataFrame] = read_source
) -> pl.DataFrame:
    """Read, map and cast one dataset as of ``window``; rows after it are not read."""
    typed = read_typed(name, cfg, plan_read(name, cfg, window), reader)
    return point_in_time(typed, name, cfg, window)


def _empty_typed(ds: Dataset) -> pl.DataFrame:
    return pl.DataFrame(schema={ROW: pl.Int64, **dict(ds.schema), REASON: pl.String})
