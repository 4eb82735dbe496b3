"""Read each configured source and map it onto its canonical dataset (source -> raw -> typed).

``extract_dataset`` is the one entry point: plan the read, read the source (files or
databases), cast it to the canonical schema and keep the rows a run as of its date sees.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

import adbc_driver_manager
import duckdb
import polars as pl
import psycopg

from tasks.config import Config, SourceConfig
from tasks.errors import ConfigError, SourceError
from tasks.schemas import DATASETS
from tasks.sources.cast import empty_typed, to_canonical
from tasks.sources.databases import (
    db_path,
    read_duckdb,
    read_postgres,
    read_sqlite,
    source_query,
)
from tasks.sources.files import read_files
from tasks.sources.plan import ReadPlan, Window, plan_read, point_in_time
from tasks.sources.secrets import describe_source, resolve_uri, source_secrets

# ADBC wraps the server's message: "NOT_FOUND: [libpq] Failed to prepare query: ERROR:  ..."
_ADBC_PREFIX = re.compile(r"^[A-Z_]+: (?:\[libpq\] )?(?:Failed to [^:]*: )?(?:ERROR:\s+)?")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, adbc_driver_manager.Error):
        text = _ADBC_PREFIX.sub("", text)
    return text.splitlines()[0].rstrip(".") if text else type(err).__name__


def read_source(
    name: str, src: SourceConfig, cfg: Config, plan: ReadPlan | None = None
) -> pl.DataFrame:
    """Read one source as it is (the raw dataset), raising one clear sentence on failure."""
    plan = plan or ReadPlan()
    uri = resolve_uri(src.uri)
    secrets = source_secrets(name, src, uri)
    what = describe_source(name, src)
    try:
        if uri.startswith("duckdb://"):
            return read_duckdb(db_path(uri, cfg), source_query(src, name), plan)
        if uri.startswith("sqlite://"):
            return read_sqlite(db_path(uri, cfg), source_query(src, name), plan)
        if uri.startswith(("postgresql://", "postgres://")):
            return read_postgres(uri, secrets.password, source_query(src, name), plan)
        return read_files(src, cfg, plan)
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
    except (duckdb.Error, sqlite3.Error, psycopg.Error, adbc_driver_manager.Error) as err:
        # connection refused, server gone
        transient = isinstance(
            err, (psycopg.OperationalError, adbc_driver_manager.OperationalError)
        )
        raise SourceError(
            f"{what}: {secrets.mask(_first_line(err))}.", transient=transient
        ) from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise SourceError(f"{what} cannot be read: {secrets.mask(_first_line(err))}.") from None


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
        return empty_typed(ds)
    return to_canonical(raw, ds, src, what)


def extract_dataset(
    name: str, cfg: Config, window: Window, reader: Callable[..., pl.DataFrame] = read_source
) -> pl.DataFrame:
    """Read, map and cast one dataset as of ``window``; rows after it are not read."""
    typed = read_typed(name, cfg, plan_read(name, cfg, window), reader)
    return point_in_time(typed, name, cfg, window)
