"""Stable partitions that cover every row exactly once."""

from __future__ import annotations

import polars as pl
import pytest

from tasks.partition import partition_expr, split


def test_partitions_cover_every_row_once_and_keep_accounts_together() -> None:
    accounts = pl.DataFrame({"account_id": [f"A{i:05d}" for i in range(1000)]})
    events = pl.DataFrame(
        {"account_id": [f"A{i % 1000:05d}" for i in range(5000)], "n": range(5000)}
    )
    parts = split({"accounts": accounts, "usage_events": events}, 4)
    assert sum(p["accounts"].height for p in parts) == 1000
    assert sum(p["usage_events"].height for p in parts) == 5000
    for p in parts:
        # every event of a partition belongs to an account of the same partition
        assert set(p["usage_events"]["account_id"]) <= set(p["accounts"]["account_id"])
        assert 150 < p["accounts"].height < 350  # roughly even
        assert p["accounts"].columns == ["account_id"]


def test_partition_of_an_account_is_stable() -> None:
    a = pl.DataFrame({"account_id": ["A1", "B2", "C3"]}).select(partition_expr(7))
    b = pl.DataFrame({"account_id": ["C3", "A1", "B2"]}).select(partition_expr(7))
    assert a.to_series().to_list() == [b.to_series()[1], b.to_series()[2], b.to_series()[0]]


def test_one_partition_is_the_data_itself() -> None:
    data = {"accounts": pl.DataFrame({"account_id": ["a"]})}
    assert split(data, 1)[0] is data
    with pytest.raises(ValueError, match="at least 1"):
        split(data, 0)
