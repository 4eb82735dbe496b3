"""PostgreSQL reads: ADBC (Arrow) against Python row tuples and COPY to CSV, on 1M rows.

Usage: .venv/bin/python benchmarks/postgres_read.py [postgresql://postgres@127.0.0.1:5432/test]
Loads a 1M-row tickets-like table (dropped at the end), then reads all of it three ways, three
times each, and prints the median wall time of each:

- ``row_tuples``: psycopg ``fetchall`` into ``pl.DataFrame(orient="row")`` (the reader before);
- ``adbc``: ``tasks.sources.databases.read_postgres`` (binary COPY into Arrow);
- ``copy_csv``: ``COPY (...) TO STDOUT (FORMAT csv)`` into ``pl.read_csv`` (the history store).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable

import polars as pl
import psycopg

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


def adbc(url: str) -> pl.DataFrame:
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


def main() -> None:
    """Time each reader on 1M rows and print the medians."""
    url = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test"
    _load(url)
    try:
        for read in (row_tuples, adbc, copy_csv):
            print(f"{read.__name__:12} {_median(read, url):6.2f} s (median of 3, {ROWS:,} rows)")
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"drop table if exists {TABLE}")


if __name__ == "__main__":
    main()
