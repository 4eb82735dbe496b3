"""The GX suites load whole, give every expectation a reason, and match the Polars schemas."""

from __future__ import annotations

import pytest

from tasks.errors import ConfigError
from tasks.schemas import DATASETS
from tasks.validate import build_suite, check_suite_columns, load_suite_json


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_suite_loads_whole(dataset: str) -> None:
    raw = load_suite_json(dataset)
    suite = build_suite(raw)
    # GX drops invalid entries silently; build_suite refuses them, and nothing was lost
    assert len(suite.expectations) == len(raw["expectations"]) > 3
    assert all(e["meta"]["reason"].strip() for e in raw["expectations"])


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_suite_names_the_schema_columns(dataset: str) -> None:
    ds = DATASETS[dataset]
    named = check_suite_columns(dataset)
    assert named <= set(ds.schema.names())
    assert set(ds.required) <= named


def test_invalid_entry_is_refused_not_dropped() -> None:
    bad = {
        "name": "x",
        "expectations": [
            {
                "type": "expect_column_values_to_be_bogus",
                "kwargs": {"column": "a"},
                "meta": {"reason": "r"},
            }
        ],
    }
    with pytest.raises(ConfigError, match="invalid"):
        build_suite(bad)


def test_entry_without_reason_is_refused() -> None:
    bad = {
        "name": "x",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": {}}
        ],
    }
    with pytest.raises(ConfigError, match="reason"):
        build_suite(bad)
