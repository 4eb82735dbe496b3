"""Row-level quarantine, counts that reconcile, the dataset gate, and GX/Polars agreement."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tasks.config import SourceConfig, parse_config
from tasks.errors import ValidationGateError
from tasks.schemas import DATASETS, SURVEY_RESPONSES
from tasks.sources.cast import to_canonical
from tasks.validate import (
    gate,
    load_suite_json,
    resolve_suite,
    run_gx,
    run_polars,
    validate_dataset,
)

CFG = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path())
RUN = datetime(2026, 3, 31, 12)
IDS = ["a", "b"]


def _surveys() -> pl.DataFrame:
    raw = pl.DataFrame(
        {
            "response_id": ["r1", "r2", "r3", "r4", "r4", None, "r7", "r8", "r9"],
            "account_id": ["a", "a", "zz", "b", "b", "a", "a", "b", "a"],
            "survey": ["NPS", "nps", "nps", "csat", "csat", "ces", "poll", "ces", "nps"],
            "score": ["9", "11", "5", "4", "4", "3", "5", "x", "7"],
            "submitted_at": [
                "2026-03-01",
                "2026-03-02",
                "2026-03-03",
                "2026-03-04",
                "2026-03-04",
                "2026-03-05",
                "2026-03-06",
                "2026-03-07",
                "2027-01-01",
            ],
        }
    )
    return to_canonical(raw, SURVEY_RESPONSES, SourceConfig(uri="x.csv"), "survey source")


def test_quarantine_reasons_and_counts_reconcile() -> None:
    v = validate_dataset(_surveys(), "survey_responses", CFG, RUN, account_ids=IDS)
    s = v.summary()
    assert s["rows_read"] == 9 == s["rows_accepted"] + s["rows_quarantined"]
    # r1 is fine (NPS case-folded to nps); everything else has something wrong
    assert v.accepted["response_id"].to_list() == ["r1"]
    reasons = dict(zip(v.quarantined["source_row"], v.quarantined["reason"], strict=True))
    assert "NPS answers are 0-10" in reasons[2]
    assert "belong to an account" in reasons[3]
    assert "identifies one record" in reasons[4]
    assert "identifies one record" in reasons[5]
    assert "response without an id" in reasons[6]
    assert "survey is nps, csat or ces" in reasons[7]
    assert reasons[8].startswith("score: 'x' is not a number")
    assert "after the run time" in reasons[9]
    counts = {(f["expectation"], f["column"]): f["count"] for f in s["failed_expectations"]}
    assert counts[("expect_column_values_to_be_unique", "response_id")] == 2
    assert counts[("cast_to_schema", "score")] == 1


def test_a_fully_valid_dataset_is_accepted_whole_with_an_empty_quarantine_of_its_schema() -> None:
    typed = _surveys().filter(pl.col("_row") == 1)  # r1 alone: nothing wrong with it
    v = validate_dataset(typed, "survey_responses", CFG, RUN, account_ids=IDS)
    assert v.accepted.equals(typed.drop("_row", "_reason"))
    assert v.quarantined.height == 0
    assert v.failed == []
    # the same columns and types as a quarantine with rows (the quarantine files' header)
    mixed = validate_dataset(_surveys(), "survey_responses", CFG, RUN, account_ids=IDS)
    assert v.quarantined.schema == mixed.quarantined.schema


def test_gate_stops_a_mostly_invalid_dataset() -> None:
    v = validate_dataset(_surveys(), "survey_responses", CFG, RUN, account_ids=IDS)
    with pytest.raises(
        ValidationGateError, match=r"survey_responses: 8 of 9 rows \(89%\) failed validation"
    ):
        gate(v, CFG)


# One broken frame per dataset (raw text, as a CSV would give it): every row-level expectation
# of the suite fails at least once, with values on both sides of each boundary.
BROKEN: dict[str, dict[str, list[str | None]]] = {
    "accounts": {
        "account_id": ["a", "b", "b", None, "e", "f", "g", "h", "i"],
        "name": ["A", "B", "B2", "D", None, "F", "G", "H", "I"],
        "status": ["active", "churned", None, None, None, "paused", None, None, None],
        "seats": ["0", None, None, None, None, None, "-1", None, None],
        "arr": ["0", None, None, None, None, None, None, "-0.5", None],
        "contract_start": [
            "2025-01-01",
            "2025-01-01",
            None,
            None,
            None,
            None,
            None,
            None,
            "2025-06-01",
        ],
        "churned_at": [
            "2025-01-01",
            "2025-06-01",
            None,
            None,
            None,
            None,
            None,
            None,
            "2025-05-31",
        ],
    },
    "orders": {
        "order_id": ["o1", "o2", "o2", None, "o5", "o6", "o7", "o8", "o9", "o10", "o11", "o12"],
        "account_id": ["a", "a", "b", "a", None, "zz", "a", "a", "a", "a", "a", "a"],
        "ordered_at": [
            "2026-03-31 12:00",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            None,
            "2026-03-31 12:00:01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
        ],
        "amount": ["0", "1", "1", "1", "1", "1", "1", "1", None, "-5", "-5", "-5"],
        "kind": ["order", None, None, None, None, None, None, None, None, "refund", None, "gift"],
    },
    "tickets": {
        "ticket_id": ["t1", "t2", "t2", None, "t5", "t6", "t7", "t8", "t9", "t10", "t11"],
        "account_id": ["a", "a", "b", "a", None, "zz", "a", "a", "a", "a", "a"],
        "opened_at": [
            "2026-03-01 10:00",
            "2026-03-02",
            "2026-03-02",
            "2026-03-02",
            "2026-03-02",
            "2026-03-02",
            None,
            "2026-04-01",
            "2026-03-02 10:00",
            "2026-03-02",
            "2026-03-02",
        ],
        "resolved_at": [
            "2026-03-01 10:00",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            "2026-03-02 09:59",
            "2026-04-02",
            None,
        ],
        "priority": ["urgent", "low", None, None, None, None, None, None, None, None, "P1"],
        "satisfaction": ["1", "5", None, None, None, None, None, None, None, "0", "5.5"],
    },
    "survey_responses": {
        "response_id": [
            "r1",
            "r2",
            "r2",
            None,
            "r5",
            "r6",
            "r7",
            "r8",
            "r9",
            "r10",
            "r11",
            "r12",
            "r13",
            "r14",
        ],
        "account_id": ["a", "a", "b", "a", None, "zz", "a", "a", "a", "a", "a", "a", "a", "a"],
        "survey": [
            "nps",
            "csat",
            "ces",
            "nps",
            "nps",
            "nps",
            None,
            "poll",
            "nps",
            "nps",
            "csat",
            "ces",
            "nps",
            "ces",
        ],
        "score": ["0", "5", "7", "10", "1", "1", "1", "1", None, "10.5", "0", "8", "-1", "1"],
        "submitted_at": [
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            None,
            "2026-03-31 12:00:01",
        ],
    },
    "usage_events": {
        "account_id": ["a", None, "zz", "b", "b", "b", "b"],
        "user_id": ["u", "u", "u", None, "u", "u", "u"],
        "event": ["e", "e", "e", "e", None, "e", "e"],
        "ts": [
            "2026-03-31 12:00",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            None,
            "2027-01-01",
        ],
    },
    "outcomes": {
        "account_id": ["a", None, "zz", "b", "b", "b", "b", "b", "b"],
        "goal": ["g", "g", "g", None, "g", "g", "g", "g", "g"],
        "target": ["0.01", "1", "1", "1", None, "0", "1", "1", "1"],
        "actual": ["0", "1", "1", "1", "1", "1", None, "1", "1"],
        "measured_at": [
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            None,
            "2206-01-01",
        ],
    },
    "action_updates": {
        "action_id": ["x1", None, "x3", "x4", "x5"],
        "status": ["done", "open", None, "expired", "snoozed"],
        "updated_at": ["2026-03-01", "2026-03-01", "2026-03-01", None, "2206-01-01"],
        "snooze_until": [None, None, None, None, "2206-02-01"],
    },
    # each row after the first breaks one expectation: no currency, no rate, a rate of 0,
    # a negative rate, no date, a date that is not one
    "fx_rates": {
        "currency": ["EUR", None, "EUR", "GBP", "GBP", "JPY", "JPY"],
        "rate_to_home": ["1.1", "1.2", None, "0", "-1", "0.007", "0.007"],
        "valid_from": [
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            None,
            "March",
        ],
    },
    # no amount, a negative amount, a period that ends before it starts, an amount not a number
    "acquisition_spend": {
        "spent_at": ["2026-03-01", "2026-03-02", "2026-03-03", None, "2026-03-05"],
        "period_start": [None, None, None, "2026-03-10", None],
        "period_end": [None, None, None, "2026-03-01", None],
        "amount": ["100", None, "-5", "10", "ten"],
        "channel": ["ads", "ads", "seo", "events", "ads"],
    },
    # each row after the first breaks one expectation: a duplicate id, no account, an unknown
    # account, an unknown channel, no text, no date, a date after the run, a rating off 1-5,
    # no id, no channel
    "feedback": {
        "feedback_id": ["f1", "f1", "f3", "f4", "f5", "f6", "f7", "f8", "f9", None, "f11"],
        "account_id": ["a", "a", None, "zz", "a", "a", "a", "a", "a", "a", "a"],
        "channel": [
            "review",
            "review",
            "review",
            "review",
            "fax",
            "review",
            "review",
            "chat",
            "review",
            "review",
            None,
        ],
        "text": ["good", "good", "good", "good", "good", None, "ok", "ok", "ok", "ok", "ok"],
        "created_at": [
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
            None,
            "2206-01-01",
            "2026-03-01",
            "2026-03-01",
            "2026-03-01",
        ],
        "rating": ["5", "5", "5", "5", "5", "5", "5", "5", "6", "5", "5"],
    },
}


def _broken(dataset: str) -> pl.DataFrame:
    raw = pl.DataFrame(BROKEN[dataset], schema=dict.fromkeys(BROKEN[dataset], pl.String))
    return to_canonical(raw, DATASETS[dataset], SourceConfig(uri="x.csv"), dataset)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_polars_translation_agrees_with_gx(dataset: str) -> None:
    ids = None if dataset == "accounts" else IDS
    suite = resolve_suite(load_suite_json(dataset), CFG, ids, RUN)
    frame = _broken(dataset)
    by_gx, by_polars = run_gx(frame, suite), run_polars(frame, suite)
    assert by_gx == by_polars
    row_level = {
        i for i, e in enumerate(suite["expectations"]) if e["type"] != "expect_column_to_exist"
    }
    assert set(by_gx) == row_level  # every translation was exercised by a failing row


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_both_engines_quarantine_the_same_rows(dataset: str) -> None:
    ids = None if dataset == "accounts" else IDS
    polars_only = CFG.model_copy(
        update={"validation": CFG.validation.model_copy(update={"gx_max_rows": 0})}
    )
    by_gx = validate_dataset(_broken(dataset), dataset, CFG, RUN, account_ids=ids)
    by_polars = validate_dataset(_broken(dataset), dataset, polars_only, RUN, account_ids=ids)
    assert (by_gx.engine, by_polars.engine) == ("great_expectations", "polars (suite translated)")
    assert by_gx.quarantined.equals(by_polars.quarantined)
    assert by_gx.failed == by_polars.failed


def test_a_whole_column_failure_stops_the_run() -> None:
    # GX can fail an expectation without naming rows; that cannot be quarantined, so it stops.
    suite = {
        "name": "orders",
        "expectations": [
            {
                "type": "expect_column_values_to_be_of_type",
                "kwargs": {"column": "amount", "type_": "int64"},
                "meta": {"reason": "amounts are whole cents"},
            }
        ],
    }
    frame = pl.DataFrame({"_row": [1], "amount": [1.5]})
    with pytest.raises(
        ValidationGateError,
        match=r"orders: column amount failed expect_column_values_to_be_of_type as a whole "
        r"\(amounts are whole cents\)",
    ):
        run_gx(frame, suite)


def _accounts(rows: dict[str, list[str | None]]) -> pl.DataFrame:
    raw = pl.DataFrame(rows, schema=dict.fromkeys(rows, pl.String))
    return to_canonical(raw, DATASETS["accounts"], CFG.sources["accounts"], "accounts")


def test_gate_messages_name_the_source_column_and_expectation() -> None:
    empty = validate_dataset(_accounts({"account_id": [], "name": []}), "accounts", CFG, RUN)
    with pytest.raises(
        ValidationGateError,
        match=r"^accounts source a.csv has no rows: there are no accounts to score\.$",
    ):
        gate(empty, CFG)
    no_ids = validate_dataset(
        _accounts({"account_id": [None, None], "name": ["A", "B"]}), "accounts", CFG, RUN
    )
    with pytest.raises(
        ValidationGateError,
        match=r"^accounts source a.csv: none of its 2 rows passed validation, so there is nothing "
        r"to score; most often column account_id: an account without an id cannot be joined",
    ):
        gate(no_ids, CFG)
    seats = validate_dataset(
        _accounts(
            {"account_id": ["a", "b", "c"], "name": ["A", "B", "C"], "seats": ["x", "y", "1"]}
        ),
        "accounts",
        CFG,
        RUN,
    )
    with pytest.raises(
        ValidationGateError,
        match=r"^accounts source a.csv: 2 of 3 rows \(67%\) failed validation, above the 20% "
        r"allowed by \[validation\] max_invalid_share; most often column seats: values not a "
        r"whole number\.$",
    ):
        gate(seats, CFG)
