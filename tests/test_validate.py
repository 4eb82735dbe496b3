"""Row-level quarantine, counts that reconcile, the dataset gate, and GX/Polars agreement."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tasks.config import SourceConfig, parse_config
from tasks.errors import ValidationGateError
from tasks.extract import to_canonical
from tasks.schemas import SURVEY_RESPONSES, TICKETS
from tasks.validate import (
    gate,
    load_suite_json,
    resolve_suite,
    run_gx,
    run_polars,
    validate_dataset,
)

CFG = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, Path("."))
RUN = datetime(2026, 3, 31, 12)


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
    v = validate_dataset(_surveys(), "survey_responses", CFG, RUN, account_ids=["a", "b"])
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


def test_gate_stops_a_mostly_invalid_dataset() -> None:
    v = validate_dataset(_surveys(), "survey_responses", CFG, RUN, account_ids=["a", "b"])
    with pytest.raises(
        ValidationGateError, match=r"survey_responses: 8 of 9 rows \(89%\) failed validation"
    ):
        gate(v, CFG)


def test_polars_translation_agrees_with_gx() -> None:
    tickets = to_canonical(
        pl.DataFrame(
            {
                "ticket_id": ["t1", "t2", "t2", "t4", "t5", "t6"],
                "account_id": ["a", "a", "b", "q", "a", None],
                "opened_at": [
                    "2026-03-01 10:00",
                    "2026-03-02",
                    "2026-03-02",
                    "2026-03-03",
                    "2026-03-04",
                    "2026-03-05",
                ],
                "resolved_at": ["2026-03-01 09:00", None, "2026-03-03", "2026-03-04", None, None],
                "priority": ["high", "P1", "low", "urgent", None, "normal"],
                "satisfaction": ["5", "0", None, "3", "6", "2"],
            }
        ),
        TICKETS,
        SourceConfig(uri="x.csv"),
        "tickets",
    )
    suite = resolve_suite(load_suite_json("tickets"), CFG, ["a", "b"], RUN)
    by_gx, by_polars = run_gx(tickets, suite), run_polars(tickets, suite)
    assert by_gx == by_polars
    assert by_gx  # the frame really is broken in several ways
