"""Extraction cache: a dataset is not read again while its source has not changed.

A run that fails after extraction (in rendering, say, or sending) and is run again reads
each dataset from ``<output.dir>/.cache`` instead of its source, as long as the source's
fingerprint is the same:

- files (CSV, Parquet, JSONL, and each file of a glob): path, size and modification time;
- DuckDB and SQLite: the database file's size and modification time;
- PostgreSQL: the row count and the latest value of the dataset's time column, or, for a
  dataset without one (accounts), a hash of every row.

The key also holds the dataset's source config, what the run asks of it (columns and time
range) and the code that maps it, so a change to any of them reads the source again. What
is cached is the typed dataset before the run's point-in-time cut, so a re-run later the same
day gives exactly the rows a read from the source would.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import uuid
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import psycopg

from tasks.config import Config, SourceConfig
from tasks.errors import SourceError
from tasks.sources.databases import db_path, source_query
from tasks.sources.plan import ReadPlan, Window, plan_read, point_in_time
from tasks.sources.read import read_typed
from tasks.sources.secrets import resolve_password, resolve_uri

KEEP = 3  # cached reads kept per dataset (a weekly run and a backfill each need their own)
# the code that decides what an extraction holds: a change to any of it invalidates the cache
_CODE = ("sources/*.py", "schemas.py")


@cache
def _code_hash() -> str:
    tasks_dir = Path(__file__).parent.parent
    h = hashlib.sha256()
    for pattern in _CODE:
        for path in sorted(tasks_dir.glob(pattern)):
            h.update(path.read_bytes())
    return h.hexdigest()


def _stat(path: Path) -> list[Any]:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def _postgres(uri: str, name: str, src: SourceConfig, time_column: str | None) -> list[Any]:
    base = source_query(src, name)
    if time_column:
        col = '"' + time_column.replace('"', '""') + '"'
        query = f"select count(*), max({col})::text from ({base}) as src"
    else:
        query = (
            "select count(*), md5(coalesce(string_agg(h, '' order by h), '')) "
            f"from (select md5(src::text) as h from ({base}) as src) as rows"
        )
    password = resolve_password(name, src)
    with psycopg.connect(uri, connect_timeout=10, application_name="chs", password=password) as con:
        con.read_only = True
        row = con.execute(query).fetchone()
    return list(row or [])


def source_fingerprint(
    name: str, src: SourceConfig, cfg: Config, plan: ReadPlan
) -> list[Any] | None:
    """Return what changes when the source's data changes (None: it cannot be told)."""
    try:
        uri = resolve_uri(src.uri)
        if uri.startswith(("duckdb://", "sqlite://")):
            return _stat(db_path(uri, cfg))
        if uri.startswith(("postgresql://", "postgres://")):
            return _postgres(uri, name, src, plan.time_column)
        pattern = str(cfg.path(src.uri))
        # glob.glob, not Path.glob: the pattern is absolute and hidden files must not match.
        paths = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]  # noqa: PTH207
        return [_stat(Path(p)) for p in paths] if paths else None
    except (OSError, psycopg.Error, ValueError):
        return None  # the read itself reports what is wrong with the source


class ExtractCache:
    """Typed datasets in Arrow IPC files under ``folder``, one per fingerprint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of(cls, cfg: Config) -> ExtractCache | None:
        """Return the config's cache, or None when ``[output] cache`` is off."""
        return cls(cfg.out_dir / ".cache" / "extract") if cfg.output.cache else None

    def key(self, name: str, cfg: Config, plan: ReadPlan) -> str | None:
        """Return the dataset's cache key, or None when its source has no fingerprint."""
        src = cfg.sources[name]
        fingerprint = source_fingerprint(name, src, cfg, plan)
        if fingerprint is None:
            return None
        body = {
            "dataset": name,
            "source": src.model_dump(mode="json"),
            "base": str(cfg.base_dir),
            "plan": asdict(plan),
            "fingerprint": fingerprint,
            "code": _code_hash(),
            "polars": pl.__version__,
        }
        text = json.dumps(body, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _path(self, name: str, key: str) -> Path:
        return self.folder / name / f"{key}.arrow"

    def get(self, name: str, key: str) -> pl.DataFrame | None:
        """Return the cached dataset, or None (a damaged file counts as missing)."""
        path = self._path(name, key)
        if not path.exists():
            return None
        try:
            df = pl.read_ipc(path)
        except (OSError, pl.exceptions.PolarsError):
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: kept longest
        return df

    def put(self, name: str, key: str, df: pl.DataFrame) -> None:
        """Store the dataset atomically and drop the oldest entries beyond ``KEEP``."""
        path = self._path(name, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        try:
            df.write_ipc(tmp, compression="lz4")
            tmp.replace(path)
        except (OSError, pl.exceptions.PolarsError):
            tmp.unlink(missing_ok=True)
            return  # a cache that cannot be written only costs the next run a read
        entries = sorted(path.parent.glob("*.arrow"), key=lambda p: p.stat().st_mtime_ns)
        for old in entries[:-KEEP]:
            old.unlink(missing_ok=True)


def extract_cached(
    name: str, cfg: Config, window: Window, store: ExtractCache | None
) -> tuple[pl.DataFrame, bool]:
    """Extract one dataset as of ``window``, from the cache when its source is unchanged.

    Returns the dataset and whether it came from the cache.
    """
    plan = plan_read(name, cfg, window)
    key = store.key(name, cfg, plan) if store else None
    typed = store.get(name, key) if store and key else None
    hit = typed is not None
    if typed is None:
        typed, key = _read_steady(name, cfg, plan, store, key)
        if store and key:
            store.put(name, key, typed)
    return point_in_time(typed, name, cfg, window), hit


READS = 3  # reads of a source that keeps changing under us before the run gives up


def _read_steady(
    name: str, cfg: Config, plan: ReadPlan, store: ExtractCache | None, key: str | None
) -> tuple[pl.DataFrame, str | None]:
    """Read the source; when its files changed during the read (a file being rewritten), read
    again, so neither the run nor the cache ever takes a half-written file.

    Returns the data and the cache key of exactly what was read (None: do not cache).
    """
    steady = store is not None and key is not None and not _is_database(cfg.sources[name].uri)
    for _ in range(READS):
        try:
            typed = read_typed(name, cfg, plan)
        except Exception:
            if steady and store is not None and store.key(name, cfg, plan) != key:
                key = store.key(name, cfg, plan)  # a half-written file failed to parse
                continue
            raise
        if not steady or store is None:
            return typed, key
        after = store.key(name, cfg, plan)
        if after == key:
            return typed, key
        key = after
    raise SourceError(
        f"Source {name} ({cfg.sources[name].uri}) kept changing while it was read "
        f"({READS} reads); run again once whatever writes it has finished.",
        transient=True,
    )


def _is_database(uri: str) -> bool:
    return resolve_uri(uri).startswith(("postgresql://", "postgres://"))
