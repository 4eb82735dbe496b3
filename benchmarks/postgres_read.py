"""PostgreSQL reads: ADBC (Arrow) against Python row tuples and COPY to CSV, on 1M rows.

Usage: .venv/bin/python benchmarks/postgres_read.py [history] [postgresql://postgres@127.0.0.1:5432/test]

Sources (no mode): loads a 1M-row tickets-like table (dropped at the end), then reads all of
it three ways, three times each, and prints the median wall time of each:

- ``row_tuples``: psycopg ``fetchall`` into ``pl.DataFrame(orient="row")`` (the reader before);
- ``adbc``: ``tasks.sources.databases.read_postgres`` (binary COPY into Arrow);
- ``copy_csv``: ``COPY (...) TO STDOUT (FORMAT csv)`` into ``pl.read_csv``.

``history``: fills the history store's ``score_history`` (all 27 columns) with 1M rows, 20
dates of 50,000 accounts, in a schema of its own (dropped at the end), and times
``PostgresHistory.scores_between`` over all of them, and over one date (what a run reads):
through ADBC (a read outside a write
transaction, ``adbc``) and by COPY to CSV on the store's psycopg connection (a read inside the
caller's write transaction, the reader before, ``copy_csv``). It also times writing the same
million rows: the store's ``COPY ... FROM STDIN (FORMAT csv)`` against ADBC's ``adbc_ingest``
(each in a transaction rolled back). Each figure is the median of 3 of wall seconds, this
process's CPU seconds (user + system, all threads) and the CPU seconds of the PostgreSQL
backend that served it (from ``/proc``: the server must run on this machine).
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import psycopg

from tasks.history.postgres_store import PostgresHistory
from tasks.history.schema import conform
from tasks.sources.databases import read_postgres
from tasks.sources.plan import ReadPlan

ROWS = 1_000_000
TABLE = "chs_bench_tickets"
QUERY = f"select * from {TABLE}"


def _load(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"drop table if exists {TABLE}")
        con.execute(
            f"""create table {TABLE} as select
                't' || i as ticket_id, 'a' || (i % 20000) as account_id,
                timestamp '2025-01-01' + (i % 500000) * interval '1 minute' as opened_at,
                timestamp '2025-01-02' + (i % 500000) * interval '1 minute' as resolved_at,
                (array['low','normal','high','urgent'])[1 + i % 4] as priority,
                (i % 5 + 1)::float8 as satisfaction
            from generate_series(1, {ROWS}) as i"""
        )


def row_tuples(url: str) -> pl.DataFrame:
    """Read the query as Python row tuples through psycopg."""
    with psycopg.connect(url) as con, con.cursor() as cur:
        cur.execute(QUERY)
        names = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def adbc_read(url: str) -> pl.DataFrame:
    """Read the query through the pipeline's ADBC reader."""
    return read_postgres(url, None, QUERY, ReadPlan())


def copy_csv(url: str) -> pl.DataFrame:
    """Read the query as CSV through COPY."""
    buf = io.BytesIO()
    sql = f"copy ({QUERY}) to stdout with (format csv, header)"
    with psycopg.connect(url) as con, con.cursor() as cur, cur.copy(sql) as copy:
        for chunk in copy:
            buf.write(chunk)
    return pl.read_csv(buf.getvalue(), try_parse_dates=True)


def _median(read: Callable[[str], pl.DataFrame], url: str) -> float:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        df = read(url)
        times.append(time.perf_counter() - t)
        assert df.height == ROWS
    return statistics.median(times)


HISTORY_SCHEMA = "chs_bench_history"
DATES, ACCOUNTS = 20, 50_000  # 1M score rows


def _history_url(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"drop schema if exists {HISTORY_SCHEMA} cascade")
        con.execute(f"create schema {HISTORY_SCHEMA}")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{HISTORY_SCHEMA}"


def _fill_scores(store: PostgresHistory) -> None:
    """Write 1M scores-like rows (every column filled, texts of realistic length) by SQL."""
    store.con.execute(  # no parameters: psycopg leaves the % operators alone
        f"""insert into score_history select
            date '2026-01-05' + 7 * (i / {ACCOUNTS}) as as_of,
            'acc' || lpad((i % {ACCOUNTS})::text, 6, '0') as account_id,
            (i % 100)::float8 as score,
            (array['at_risk','neutral','healthy'])[1 + i % 3] as segment,
            0.5 + (i % 50) / 100.0 as coverage, i % 17 = 0 as insufficient_data,
            1000.0 * (i % 300) as arr,
            (i % 91)::float8, (i % 83)::float8, (i % 79)::float8, (i % 73)::float8,
            (i % 71)::float8, (i % 67)::float8,
            (i % 11) - 5.0 as score_delta_1w, (i % 13) - 6.0 as score_delta_4w,
            i % 29 = 0 as drop_alert,
            'license_utilisation (-12.0), nps_account (-8.5), tickets_90d (-3.1)' as top_drivers,
            'usage -4.0, support +1.5' as change_drivers,
            (array['smb','mid','enterprise'])[1 + i % 3] as tier,
            'default' as model, null, null, null, null, null,
            (i % 100) / 100.0 as p_churn_90d, 10.0 * (i % 300) as expected_arr_at_risk
        from generate_series(0, {DATES * ACCOUNTS - 1}) as i""",
    )


def _server_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) a PostgreSQL backend has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median3(name: str, run: Callable[[], object], backend: int, rows: int = ROWS) -> object:
    """Run three times; print the median wall, this process's CPU and the backend's CPU."""
    runs, out = [], None
    for _ in range(3):
        wall, cpu, server = time.perf_counter(), time.process_time(), _server_cpu(backend)
        out = run()
        runs.append(
            (
                time.perf_counter() - wall,
                time.process_time() - cpu,
                _server_cpu(backend) - server,
            )
        )
    wall_s, cpu_s, server_s = (statistics.median(r[i] for r in runs) for i in range(3))
    print(
        f"{name:18} {wall_s:6.2f} s wall, {cpu_s:5.2f} s CPU here, {server_s:5.2f} s CPU in "
        f"the server (medians of 3, {rows:,} rows)"
    )
    return out


def history(url: str) -> None:
    """Time the history store's 1M-row reads (ADBC, COPY to CSV) and writes (COPY, ingest)."""
    store_url = _history_url(url)
    store = PostgresHistory(store_url)
    ingest = adbc.connect(store_url)  # a transaction per write, rolled back
    try:
        with store._own_transaction():
            _fill_scores(store)
        start, end = date(2026, 1, 5), date(2026, 1, 5) + timedelta(weeks=DATES - 1)
        [(reader,)] = store._rows("select pg_backend_pid()", [])  # opens the ADBC reader
        writer = store.con.info.backend_pid

        def by_adbc() -> pl.DataFrame:
            return store.scores_between(start, end)

        def by_copy() -> pl.DataFrame:
            with store._own_transaction():  # the caller's write transaction: COPY on psycopg
                return store.scores_between(start, end)

        frame = _median3("read adbc", by_adbc, reader)
        copied = _median3("read copy_csv", by_copy, writer)
        assert isinstance(frame, pl.DataFrame)
        assert isinstance(copied, pl.DataFrame)
        assert frame.height == ROWS
        assert frame.equals(copied)  # the same frame, types and all, either way
        # what a run reads: one date's scores (last week's), 50,000 rows
        with store._own_transaction():
            week = store.scores_between(end, end)
        assert week.height == ACCOUNTS
        assert store.scores_between(end, end).equals(week)

        def week_adbc() -> pl.DataFrame:
            return store.scores_between(end, end)

        def week_copy() -> pl.DataFrame:
            with store._own_transaction():
                return store.scores_between(end, end)

        _median3("read 1 date adbc", week_adbc, reader, ACCOUNTS)
        _median3("read 1 date copy", week_copy, writer, ACCOUNTS)
        rows = conform(frame, "score_history")
        arrow = rows.to_arrow()
        with ingest.cursor() as cur:
            cur.execute("select pg_backend_pid()")
            [(ingester,)] = cur.fetchall()
        ingest.rollback()

        def write_copy() -> None:
            with store.con.transaction(force_rollback=True):
                store._insert("score_history", rows)

        def write_ingest() -> None:
            with ingest.cursor() as cur:
                cur.adbc_ingest("score_history", arrow, mode="append")
            ingest.rollback()

        _median3("write copy_csv", write_copy, writer)
        _median3("write adbc_ingest", write_ingest, ingester)
    finally:
        ingest.close()
        store.close()
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"drop schema if exists {HISTORY_SCHEMA} cascade")


def main() -> None:
    """Time each reader on 1M rows and print the medians."""
    args = sys.argv[1:]
    mode = args.pop(0) if args and args[0] == "history" else "sources"
    url = args[0] if args else "postgresql://postgres@127.0.0.1:5432/test"
    if mode == "history":
        history(url)
        return
    _load(url)
    try:
        for read in (row_tuples, adbc_read, copy_csv):
            print(f"{read.__name__:12} {_median(read, url):6.2f} s (median of 3, {ROWS:,} rows)")
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"drop table if exists {TABLE}")


if __name__ == "__main__":
    main()
