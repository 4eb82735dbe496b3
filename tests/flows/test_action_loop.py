"""End to end: a run, `chs actions export`, a CSM's edits fed back, and the next week's run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.cli.main import main
from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tests.conftest import DEMO_END

FIRST = DEMO_END - timedelta(days=7)
UNKNOWN = "ffffffffffffffff"


def _edit(export: Path) -> dict[str, str]:
    """Edit the export as a CSM would: one done, one dismissed, one snoozed, one done action
    re-opened by hand (illegal) and one row with an id the pipeline never made.
    """
    rows = pl.read_csv(export, infer_schema_length=0)
    assert rows.height >= 4
    picked = rows.head(3)
    ids = dict(zip(("done", "dismissed", "snoozed"), picked["action_id"], strict=True))
    at = (datetime.fromisoformat(rows["updated_at"][0]) + timedelta(hours=9)).isoformat()
    later = (datetime.fromisoformat(at) + timedelta(hours=1)).isoformat()
    snooze = (DEMO_END + timedelta(days=21)).isoformat()
    edited = rows.with_columns(
        pl.col("action_id")
        .replace_strict({v: k for k, v in ids.items()}, default=pl.col("status"))
        .alias("status"),
        pl.lit(at).alias("updated_at"),
        pl.lit("maria.lopez@example.com").alias("author"),
        pl.when(pl.col("action_id") == ids["snoozed"])
        .then(pl.lit(snooze))
        .otherwise(pl.col("snooze_until"))
        .alias("snooze_until"),
    )
    extra = pl.DataFrame(
        {
            "action_id": [ids["done"], UNKNOWN],
            "status": ["open", "done"],  # done -> open by hand; an id nobody made
            "updated_at": [later, later],
            "author": ["maria.lopez@example.com"] * 2,
            "note": ["re-opened by mistake", "typo in the id"],
        }
    )
    pl.concat([edited, extra], how="diagonal").write_csv(export)
    return ids


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_an_edited_export_fed_back_is_honoured_by_the_next_run(demo: Path) -> None:
    config = demo / "chs.toml"
    first = weekly_flow(WeeklyParams(config_path=str(config), as_of=FIRST))
    export = demo / "updates.csv"
    status = main(
        ["actions", "export", "--config", str(config), "--as-of", str(FIRST), "--out", str(export)]
    )
    assert status == 0
    listed = pl.read_csv(demo / "out" / FIRST.isoformat() / "actions.csv")
    exported = pl.read_csv(export, infer_schema_length=0)
    # the export is every open action of the run, nothing held out or deferred
    assert exported.height == listed.filter(pl.col("status") == "open").height == first.actions
    ids = _edit(export)
    config.write_text(
        config.read_text() + '\n[sources.action_updates]\nuri = "updates.csv"\n', encoding="utf-8"
    )

    second = weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END))
    c = second.loop
    assert c["fired"] == c["new"] + c["carried"] + c["deferred"] + c["holdout"]
    assert c["updated"] == 3  # done, dismissed, snoozed; the two bad rows changed nothing
    assert c["cooling"] >= 1  # a closed action's rule fired again and was held back
    out = demo / "out" / DEMO_END.isoformat()
    validation = json.loads((out / "validation.json").read_text())["datasets"]["action_updates"]
    assert validation["rows_read"] == exported.height + 2
    assert validation["rows_accepted"] == exported.height  # the edited rows
    assert validation["rows_quarantined"] == 2
    failed = {f["expectation"]: f["count"] for f in validation["failed_expectations"]}
    assert failed == {"known_action_id": 1, "legal_status_transition": 1}
    quarantine = pl.read_csv(out / "quarantine" / "action_updates.csv", infer_schema_length=0)
    reasons = dict(zip(quarantine["action_id"], quarantine["reason"], strict=True))
    assert reasons == {
        ids["done"]: "status: done -> open is not a legal transition",
        UNKNOWN: f"action_id: {UNKNOWN} is not an action of this pipeline",
    }

    con = duckdb.connect(str(demo / "out" / "history.duckdb"), read_only=True)
    try:
        state = con.sql(
            "select action_id, account_id, action, status, snooze_until from action_history "
            "where as_of = ?",
            params=[DEMO_END],
        ).pl()
        events = con.sql(
            "select action_id, status, previous, author, source from action_events "
            "where as_of = ? and source = 'update'",
            params=[DEMO_END],
        ).pl()
    finally:
        con.close()
    now = dict(zip(state["action_id"], state["status"], strict=True))
    assert now[ids["done"]] == "done"
    assert now[ids["dismissed"]] == "dismissed"
    assert now[ids["snoozed"]] == "snoozed"
    snoozed = state.filter(pl.col("action_id") == ids["snoozed"])
    assert snoozed["snooze_until"].item() == DEMO_END + timedelta(days=21)
    # every applied change is kept with its author
    assert sorted(events["status"]) == ["dismissed", "done", "snoozed"]
    assert set(events["author"]) == {"maria.lopez@example.com"}
    assert set(events["previous"]) == {"open"}

    # cooldown: a done or dismissed action's rule opens no new action for the account
    closed = state.filter(pl.col("action_id").is_in([ids["done"], ids["dismissed"]]))
    pairs = closed.select("account_id", "action")
    listed = pl.read_csv(out / "actions.csv")
    assert listed.join(pairs, on=["account_id", "action"], how="semi").is_empty()
    assert not set(listed["action_id"]) & {ids["done"], ids["dismissed"]}
    # the snoozed one is listed as snoozed, not as work
    assert listed.filter(pl.col("action_id") == ids["snoozed"])["status"].to_list() == ["snoozed"]
    # the report's method footnote says a hold-out exists (nobody is told who is in it)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Playbooks are measured against a hold-out group (10% of newly qualifying" in report
    # an action still open last week and still firing is carried under the same id
    carried = set(exported["action_id"]) - set(ids.values())
    assert carried & set(listed["action_id"])
