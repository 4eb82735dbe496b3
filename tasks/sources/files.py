"""Read CSV, JSON Lines and Parquet files (and globs of them) as they are, with row numbers."""

from __future__ import annotations

import csv
import glob
import io
import json
from datetime import datetime
from pathlib import Path

import polars as pl

from tasks.config import Config, SourceConfig
from tasks.errors import ConfigError, SourceError
from tasks.sources.excel import EXCEL_SUFFIXES, read_excel
from tasks.sources.plan import ROW, ReadPlan, bounds


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
    if suffix in EXCEL_SUFFIXES:
        return read_excel(path, src)
    raise ConfigError(f"{path}: unknown file type {suffix!r}; use .csv, .parquet, .jsonl or .xlsx.")


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
    lo, hi, after = bounds(plan)
    need = pl.lit(True)
    if plan.end is not None:
        need = (t <= lit(hi)) | (t > lit(after))
    if plan.start is not None:
        need = need & (t >= lit(lo))
    return t.is_null() | need


def read_files(src: SourceConfig, cfg: Config, plan: ReadPlan) -> pl.DataFrame:
    """Read the file or files the source's path or glob names, row numbers running on."""
    pattern = str(cfg.path(src.uri))
    is_glob = any(c in pattern for c in "*?[")
    # glob.glob, not Path.glob: the pattern is absolute and hidden files (editor locks) must not
    # match, as Path.glob's "*" would let them.
    paths = sorted(glob.glob(pattern)) if is_glob else [pattern]  # noqa: PTH207
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
