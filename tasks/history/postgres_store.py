"""History in PostgreSQL (``[output] history = "postgresql://..."``).

An advisory lock per date serialises writers. Reads go through ADBC (the server's binary COPY
straight into Arrow) on a second, autocommit connection, so they see committed dates only; a
read inside the calling thread's own write transaction (``_transaction``, or the table set-up)
stays on that transaction's psycopg connection, the only one that sees its rows, and reads
there by COPY to CSV.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import psycopg
from psycopg import sql as pg_sql

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


def _inlined(sql: str, params: Sequence[Any]) -> str:
    """Write the stores' ``?`` parameters (dates, ids) into the query as quoted literals.

    The driver reads a query without bound parameters by binary COPY; bound ones made it a
    prepared statement, about a quarter more CPU on 1M rows (BENCHMARKS.md).
    """
    parts = sql.split("?")
    if len(parts) != len(params) + 1:
        raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} parameters: {sql}")
    literals = [pg_sql.Literal(p).as_string(None) for p in params]
    return "".join(part + lit for part, lit in zip(parts, [*literals, ""], strict=True))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class PostgresHistory(SqlHistory):
    """History in PostgreSQL; a transaction-level advisory lock per date serialises writers."""

    def __init__(self, url: str) -> None:
        self.url = _masked(url)
        self._dsn = url  # with its password: only the drivers see it
        try:
            self.con = psycopg.connect(url, connect_timeout=10, autocommit=True)
        except psycopg.Error as err:
            raise HistoryError(
                f"History store {self.url} cannot be opened: {_first_line(err)}.",
                transient=isinstance(err, psycopg.OperationalError),
            ) from None
        self._writer: int | None = None  # the thread whose write transaction is open
        self._reader: adbc.Connection | None = None  # opened by the first read
        self._read_lock = threading.Lock()  # one statement at a time on the ADBC connection
        with self._own_transaction():
            self._execute("select pg_advisory_xact_lock(?, 0)", [_PG_LOCK_SPACE])
            create_tables(self, "postgres")

    @contextmanager
    def _own_transaction(self) -> Iterator[None]:
        """Open a transaction on the psycopg connection; this thread's reads then run in it."""
        with self.con.transaction():
            self._writer = threading.get_ident()
            try:
                yield
            finally:
                self._writer = None

    def _in_transaction(self) -> bool:
        return self._writer == threading.get_ident()

    def _arrow(self, sql: str, params: Sequence[Any]) -> Any:
        """Run a read on the ADBC connection and return its Arrow table."""
        with self._read_lock:
            try:
                if self._reader is None:
                    self._reader = adbc.connect(self._dsn, autocommit=True)
                with self._reader.cursor() as cur:
                    cur.execute(_inlined(sql, params))
                    return cur.fetch_arrow_table()
            except adbc_driver_manager.Error as err:
                lost = isinstance(err, adbc_driver_manager.OperationalError)
                if lost and self._reader is not None:  # a later retry connects again
                    self._reader.close()
                    self._reader = None
                raise HistoryError(
                    f"History store {self.url} cannot be read: {_first_line(err)}.",
                    transient=lost,
                ) from None

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def _frame(self, sql: str, params: Sequence[Any], schema: pl.Schema) -> pl.DataFrame:
        if self._in_transaction():
            return self._copy_frame(sql, params, schema)
        df = pl.from_arrow(self._arrow(sql, params))
        assert isinstance(df, pl.DataFrame)  # a table converts to a frame
        # by name, not position: a migrated table may hold its columns in another order
        return df.select(list(schema)).cast(schema)

    def _copy_frame(self, sql: str, params: Sequence[Any], schema: pl.Schema) -> pl.DataFrame:
        """Read on the psycopg connection (inside its transaction) by COPY to CSV."""
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
        if not self._in_transaction():
            return [tuple(r.values()) for r in self._arrow(sql, params).to_pylist()]
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
            with self._own_transaction():
                # a second writer of the same date waits here until the first one commits
                self._execute(
                    "select pg_advisory_xact_lock(?, ?)", [_PG_LOCK_SPACE, as_of.toordinal()]
                )
                yield
        except psycopg.OperationalError as err:  # the server went away: nothing was committed
            first = _first_line(err)
            raise HistoryError(
                f"History store {self.url} was lost while {as_of} was being written ({first}); "
                "nothing of that date was stored.",
                transient=True,
            ) from None

    def close(self) -> None:
        """Close the connections."""
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self.con.close()
