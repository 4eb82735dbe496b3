"""History in PostgreSQL (``[output] history = "postgresql://..."``).

An advisory lock per date serialises writers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import psycopg

from tasks.errors import HistoryError
from tasks.history.sql import SqlHistory, create_tables

_PG_LOCK_SPACE = 0x43485331  # first key of this store's PostgreSQL advisory locks ("CHS1")


def _masked(url: str) -> str:
    """Hide the password of a database URL."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresHistory(SqlHistory):
    """History in PostgreSQL; a transaction-level advisory lock per date serialises writers."""

    def __init__(self, url: str) -> None:
        self.url = _masked(url)
        try:
            self.con = psycopg.connect(url, connect_timeout=10, autocommit=True)
        except psycopg.Error as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise HistoryError(
                f"History store {self.url} cannot be opened: {first}.",
                transient=isinstance(err, psycopg.OperationalError),
            ) from None
        with self.con.transaction():
            self._execute("select pg_advisory_xact_lock(?, 0)", [_PG_LOCK_SPACE])
            create_tables(self, "postgres")

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def _frame(self, sql: str, params: Sequence[Any], schema: pl.Schema) -> pl.DataFrame:
        buf = io.BytesIO()
        with self.con.cursor() as cur:
            copy_sql = f"copy ({self._sql(sql)}) to stdout with (format csv, header)"
            with cur.copy(copy_sql, list(params)) as copy:
                for chunk in copy:
                    buf.write(chunk)
        # PostgreSQL writes booleans as t/f: read them as text and map them
        text = {c: (pl.String() if t == pl.Boolean() else t) for c, t in schema.items()}
        # by name, not position: a migrated table may hold its columns in another order
        df = (
            pl.read_csv(buf.getvalue(), schema_overrides=text).select(list(schema))
            if buf.tell()
            else None
        )
        if df is None:
            return pl.DataFrame(schema=schema)
        flags = [pl.col(c) == "t" for c, t in schema.items() if t == pl.Boolean()]
        return df.with_columns(flags) if flags else df

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            return cur.execute(self._sql(sql), list(params)).fetchall()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.con.cursor() as cur:
            cur.execute(self._sql(sql), list(params))

    def _insert(self, table: str, df: pl.DataFrame) -> None:
        if df.is_empty():
            return
        names = ", ".join(f'"{c}"' for c in df.columns)
        data = df.write_csv(include_header=False).encode()
        with (
            self.con.cursor() as cur,
            cur.copy(f"copy {table} ({names}) from stdin with (format csv)") as copy,
        ):
            copy.write(data)

    @contextmanager
    def _transaction(self, as_of: date) -> Iterator[None]:
        try:
            with self.con.transaction():
                # a second writer of the same date waits here until the first one commits
                self._execute(
                    "select pg_advisory_xact_lock(?, ?)", [_PG_LOCK_SPACE, as_of.toordinal()]
                )
                yield
        except psycopg.OperationalError as err:  # the server went away: nothing was committed
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise HistoryError(
                f"History store {self.url} was lost while {as_of} was being written ({first}); "
                "nothing of that date was stored.",
                transient=True,
            ) from None

    def close(self) -> None:
        """Close the connection."""
        self.con.close()
