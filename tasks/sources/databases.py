"""Read a table or query from DuckDB, SQLite or PostgreSQL, asking only for what a ``ReadPlan`` needs."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import adbc_driver_postgresql.dbapi as adbc
import duckdb
import polars as pl
import pyarrow as pa

from tasks.config import Config, SourceConfig
from tasks.errors import ConfigError
from tasks.sources.plan import ReadPlan, bounds

_ISO_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
# libpq settings of every source connection: named, bounded, and read-only at the server, so a
# query from the config can never change the source
_PG_OPTIONS = {
    "application_name": "chs",
    "connect_timeout": "10",
    "options": "-c default_transaction_read_only=on",
}


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
        lo, hi, after = (f"timestamp '{d:%Y-%m-%d %H:%M:%S}'" for d in bounds(plan))
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
        lo, hi, after = (f"'{d:%Y-%m-%d}'" for d in bounds(plan, day_after_end=True))
        upper, lower = f"({c} < {hi} or {c} >= {after})", f"{c} >= {lo}"
    else:
        return None
    need = " and ".join(
        cond
        for cond, used in ((upper, plan.end is not None), (lower, plan.start is not None))
        if used
    )
    return "(" + " or ".join([*keep, f"({need})"]) + ")"


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


def read_duckdb(path: Path, base: str, plan: ReadPlan) -> pl.DataFrame:
    """Read what the plan asks for from a DuckDB file, read-only."""
    if not path.exists():
        raise FileNotFoundError(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rel = con.sql(base)
        kinds = {c: _duckdb_kind(str(t)) for c, t in zip(rel.columns, rel.types, strict=True)}
        # duckdb types .pl() as Any because .pl(lazy=True) returns a LazyFrame instead.
        frame: pl.DataFrame = con.sql(select_sql(base, kinds, plan, "duckdb")).pl()
        return frame
    finally:
        con.close()


def read_sqlite(path: Path, base: str, plan: ReadPlan) -> pl.DataFrame:
    """Read what the plan asks for from a SQLite file, read-only."""
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


def _arrow_kind(dtype: pa.DataType) -> str:
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "temporal"
    return "text" if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) else "other"


def adbc_uri(uri: str, password: str | None) -> str:
    """Return the libpq URI the driver connects with: the source's, with this reader's settings.

    The password (None: none) joins only this string, which goes to the driver and is never
    shown: error messages are masked with it (``tasks.sources.secrets``).
    """
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _PG_OPTIONS]
    query += list(_PG_OPTIONS.items())
    if password is not None:
        query.append(("password", password))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _plain(table: pa.Table) -> pa.Table:
    """Read PostgreSQL types Arrow has no type for (numeric, json, …) as their text."""
    fields = [
        f.with_type(f.type.storage_type) if isinstance(f.type, pa.BaseExtensionType) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields)) if fields != list(table.schema) else table


def read_postgres(uri: str, password: str | None, base: str, plan: ReadPlan) -> pl.DataFrame:
    """Read through ADBC: PostgreSQL's binary COPY straight into Arrow, no Python row tuples."""
    with adbc.connect(adbc_uri(uri, password)) as con, con.cursor() as cur:
        cur.execute(f"select * from ({base}) as src limit 0")
        kinds = {f.name: _arrow_kind(f.type) for f in cur.fetch_arrow_table().schema}
        cur.execute(select_sql(base, kinds, plan, "postgres"))
        table = cur.fetch_arrow_table()
    out = pl.from_arrow(_plain(table))
    assert isinstance(out, pl.DataFrame)  # a table converts to a frame
    return out
