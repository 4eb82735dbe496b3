"""The GX suites load whole, give every expectation a reason, and match the Polars schemas."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.errors import ConfigError
from tasks.schemas import DATASETS, DEFAULT_SCALES, TS
from tasks.validate import build_suite, check_suite_columns, load_suite_json, polars_unexpected


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


def _entries(dataset: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in load_suite_json(dataset)["expectations"] if e["type"] == kind]


def _columns(dataset: str, kind: str) -> set[str]:
    return {e["kwargs"]["column"] for e in _entries(dataset, kind)}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_expectation_has_a_polars_translation(dataset: str) -> None:
    # datasets above [validation] gx_max_rows run the suite as Polars expressions
    schema = DATASETS[dataset].schema
    for entry in load_suite_json(dataset)["expectations"]:
        polars_unexpected(entry, schema)  # raises ConfigError when there is none


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_suite_covers_the_data_contract(dataset: str) -> None:
    ds = DATASETS[dataset]
    assert _columns(dataset, "expect_column_to_exist") == set(ds.required)
    assert set(ds.required) <= _columns(dataset, "expect_column_values_to_not_be_null")
    if ds.key:
        assert ds.key in _columns(dataset, "expect_column_values_to_be_unique")
    in_set = {
        e["kwargs"]["column"]: e for e in _entries(dataset, "expect_column_values_to_be_in_set")
    }
    for column, values in ds.value_sets.items():
        assert in_set[column]["kwargs"]["value_set"] == list(values)
    if (
        "account_id" in ds.schema and dataset != "accounts"
    ):  # referential integrity: every row belongs to a known account
        assert in_set["account_id"]["meta"]["value_set_from"] == "accounts.account_id"
    # no timestamp may lie after the run time
    timestamps = {c for c, t in ds.schema.items() if t == TS}
    bounded = {
        e["kwargs"]["column"]
        for e in _entries(dataset, "expect_column_values_to_be_between")
        if e["meta"].get("max_value_from") == "run_time"
    }
    assert bounded == timestamps


def test_survey_scores_are_checked_per_survey_type() -> None:
    ranges = {
        e["meta"]["scale_from"]: e["kwargs"]["row_condition"]
        for e in _entries("survey_responses", "expect_column_values_to_be_between")
        if e["kwargs"]["column"] == "score"
    }
    assert ranges == {s: f'survey=="{s}"' for s in DEFAULT_SCALES}
