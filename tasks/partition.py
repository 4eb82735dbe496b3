"""Split the accounts into N stable partitions, so features can be computed in parallel.

The partition of an account depends only on its id (a stable hash), never on the order or
size of the data, so the same account lands in the same partition every week and on every
worker. Features are per account; portfolio KPIs and percentile normalisation run after the
partitions are joined again, so a partitioned run gives exactly the single-process result.
"""

from __future__ import annotations

import polars as pl

PART = "_partition"


def partition_expr(n: int) -> pl.Expr:
    """Return the partition number (0..n-1) of each row's account_id."""
    # a fixed seed gives the same partition in every process of one Polars version, which is
    # all a run needs (partitions are joined again before anything is stored)
    return (pl.col("account_id").hash(seed=0) % n).cast(pl.Int32)


def split(data: dict[str, pl.DataFrame], n: int) -> list[dict[str, pl.DataFrame]]:
    """Split every dataset by its accounts' partition; datasets keep their schema."""
    if n < 1:
        raise ValueError("the number of partitions must be at least 1")
    if n == 1:
        return [data]
    marked = {name: df.with_columns(partition_expr(n).alias(PART)) for name, df in data.items()}
    return [
        {name: df.filter(pl.col(PART) == p).drop(PART) for name, df in marked.items()}
        for p in range(n)
    ]
