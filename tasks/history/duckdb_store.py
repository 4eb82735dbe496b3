"""History in an embedded DuckDB file, the default store.

Writers of one date are serialised by a lock per file inside the process and DuckDB's own
single-writer file lock between processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from tasks.errors import ChsError, ConfigError, HistoryError
from tasks.history.sql import LOCK_TIMEOUT_S, SqlHistory, create_tables
from tasks.runlock import is_disk_full

_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _wait_for(connect: Any, what: str, timeout: float) -> Any:
    """Call ``connect`` until another process releases the store's lock or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        try:
            return connect()
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                first = str(err).splitlines()[0]
                raise ChsError(f"History store {what} cannot be opened: {first}.") from None
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


# what a damaged file raises once its data blocks are read (the catalogue may still open)
_DAMAGE = (
    duckdb.IOException,
    duckdb.InternalException,
    duckdb.SerializationException,
    duckdb.FatalException,
)


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Turn the errors of a damaged or truncated file into one sentence naming it."""
    try:
        yield
    except _DAMAGE as err:
        if is_disk_full(err):
            raise  # not damage: the run's lock reports the full disk (tasks/runlock.py)
        first = str(err).splitlines()[0]
        raise HistoryError(
            f"History store {path} cannot be read, the file looks damaged ({first}); restore "
            "it from a backup, or move it away to start a new history."
        ) from None


def _file_lock(path: Path) -> threading.Lock:
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(str(path.resolve()), threading.Lock())


class DuckDBHistory(SqlHistory):
    """History in an embedded DuckDB file (one writer at a time: DuckDB locks the file)."""

    def __init__(self, path: Path, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = _file_lock(path)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_guard = threading.Lock()
        try:
            self.con = _wait_for(lambda: duckdb.connect(str(path)), str(path), lock_timeout)
        except duckdb.Error as err:
            raise ConfigError(
                f"History store {path} cannot be opened: {str(err).splitlines()[0]}."
            ) from None
        # A date's scores (under a row group, 122,880 rows) go through the write-ahead log;
        # at the default 16 MB threshold nearly every commit then checkpointed the file, which
        # cost more than the inserts (0.6-1.4 s a date at 100k accounts, growing with the
        # file). The log is as durable; a checkpoint now comes every ~10 dates at that size
        # (or at close), and what the log holds in memory stays bounded.
        self.con.execute("set checkpoint_threshold = '256MB'")
        with self._lock:
            create_tables(self, "duckdb")

    def _reader(self) -> duckdb.DuckDBPyConnection:
        """Return this thread's cursor for reads.

        A connection may not be used by two threads at once, and a backfill stores one date in
        the background while the next date reads.
        """
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._cursors_guard:
                cursor = self._local.cursor = self.con.cursor()
                self._cursors.append(cursor)
        return cursor

    def _frame(self, sql: str, params: Sequence[Any], schema: pl.Schema) -> pl.DataFrame:
        # DuckDB 2.0: relations (con.sql) convert to Polars; execute() results no longer do
        with _readable(self.path):
            df = self._reader().sql(sql, params=list(params)).pl()
        return df.cast(schema) if df.width else pl.DataFrame(schema=schema)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # DuckDB 2.0 keeps a result open until it is fetched to the end: fetchall, not fetchone
        with _readable(self.path):
            return self._reader().execute(sql, list(params)).fetchall()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _readable(self.path):
            self.con.execute(sql, list(params)).fetchall()

    def _insert(self, table: str, df: pl.DataFrame) -> None:
        self.con.register("_incoming", df.to_arrow())
        try:
            names = ", ".join(f'"{c}"' for c in df.columns)
            self._execute(f"insert into {table} ({names}) select {names} from _incoming")
        finally:
            self.con.unregister("_incoming")

    @contextmanager
    def _transaction(self, as_of: date) -> Iterator[None]:
        # connections of one process share the file, so threads take the file's lock first
        with self._lock:
            self._execute("begin transaction")
            try:
                yield
                self._execute("commit")
            except BaseException:
                self._execute("rollback")
                raise

    def close(self) -> None:
        """Close the read cursors and the connection."""
        for cursor in self._cursors:
            cursor.close()
        self.con.close()
