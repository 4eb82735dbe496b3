"""Actions and their status changes in both history stores (DuckDB and PostgreSQL), point in time."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from tasks.config import parse_config
from tasks.history.schema import HistoryStore
from tasks.lifecycle import advance, apply_updates, empty_state
from tests.tasks.history.test_store import D1, D2, open_store, snapshot, store  # noqa: F401

CFG = parse_config(
    {
        "sources": {"accounts": {"uri": "a.csv"}},
        "actions": {
            "holdout_share": 0.0,
            "playbooks": [{"action": "Call", "when": {"segment": "at_risk"}, "reason": "r"}],
        },
    },
    Path(),
)
SCORED = pl.DataFrame({"account_id": ["acc0"], "score": [30.0], "segment": ["at_risk"]})


def _fired(day: object) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["acc0"],
            "as_of": [day],
            "action": ["Call"],
            "reason": ["at risk"],
            "owner": ["csm@example.com"],
            "priority": ["high"],
            "due_date": [D1 + timedelta(days=7)],
        }
    )


def test_actions_and_status_changes_read_back_as_they_were_on_each_date(
    store: HistoryStore,  # noqa: F811
) -> None:
    # D1: the rule opens an action
    first = advance(empty_state(), _fired(D1), SCORED, CFG, D1)
    store.write_snapshot(replace(snapshot(D1), actions=first.state, action_events=first.events))
    (opened,) = first.state["action_id"].to_list()
    # D2: the CSM marked it done the day after; the rule fires again and is cooling
    updates = pl.DataFrame(
        {
            "action_id": [opened],
            "status": ["done"],
            "updated_at": [datetime.combine(D1, datetime.min.time()) + timedelta(days=1)],
            "author": ["maria@example.com"],
            "note": ["called them"],
        }
    )
    prev = store.actions_before(D2)
    assert prev["status"].to_list() == ["open"]  # what the run of D2 starts from
    done = apply_updates(prev, updates, store.action_ids_before(D2), D2)
    assert done.rejected.is_empty()
    second = advance(done.state, _fired(D2), SCORED, CFG, D2)
    events = pl.concat([pl.DataFrame(done.events, schema=second.events.schema), second.events])
    store.write_snapshot(replace(snapshot(D2), actions=second.state, action_events=events))

    # point in time: a re-run of D2 starts from D1's state, a later run from D2's
    assert store.actions_before(D2)["status"].to_list() == ["open"]
    later = store.actions_before(D2 + timedelta(days=7))
    assert later.select("action_id", "status").rows() == [(opened, "done")]
    assert later["closed_on"].to_list() == [D1 + timedelta(days=1)]
    assert store.action_ids_before(D2) == {opened}
    kept = store.action_events_between(D1, D2)  # type: ignore[attr-defined]
    assert kept.select("as_of", "status", "previous", "author", "note", "source").rows() == [
        (D1, "open", None, None, None, "rule"),
        (D2, "done", "open", "maria@example.com", "called them", "update"),
    ]
    openings = store.action_openings(D2)
    assert openings.select("action_id", "opened_on", "holdout").rows() == [(opened, D1, False)]

    # re-running D1 replaces D1's rows only: D2's status change is still there
    store.write_snapshot(replace(snapshot(D1), actions=first.state, action_events=first.events))
    assert store.action_events_between(D2, D2)["status"].to_list() == ["done"]  # type: ignore[attr-defined]
    assert store.actions_before(D2 + timedelta(days=1))["status"].to_list() == ["done"]
