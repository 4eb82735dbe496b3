"""The lifecycle of actions on tiny frames: carry, cooldown, capacity, hold-out, expiry, updates."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from tasks.config import Config, parse_config
from tasks.lifecycle import action_id, advance, apply_updates, empty_state, holdout_draw
from tasks.schemas import ACTION_UPDATES

D1 = date(2025, 6, 2)
D2 = D1 + timedelta(days=7)


def _cfg(**settings: object) -> Config:
    actions = {
        "holdout_share": 0.0,
        **settings,
        "playbooks": [
            {"action": "Call", "when": {"segment": "at_risk"}, "reason": "r", "priority": "high"},
            {
                "action": "Workshop",
                "when": {"segment": "at_risk"},
                "reason": "r",
                "priority": "low",
            },
        ],
    }
    return parse_config({"sources": {"accounts": {"uri": "a.csv"}}, "actions": actions}, Path())


def _fired(rows: list[tuple[str, str, str]], as_of: date) -> pl.DataFrame:
    """(account, action, priority) rows as recommend() returns them, owner c@x."""
    return pl.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "as_of": [as_of] * len(rows),
            "action": [r[1] for r in rows],
            "reason": ["r"] * len(rows),
            "owner": ["c@x"] * len(rows),
            "priority": [r[2] for r in rows],
            "due_date": [as_of + timedelta(days=7)] * len(rows),
        },
        schema={
            "account_id": pl.String,
            "as_of": pl.Date,
            "action": pl.String,
            "reason": pl.String,
            "owner": pl.String,
            "priority": pl.String,
            "due_date": pl.Date,
        },
    )


def _scored(ids: list[str], arr: list[float] | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ids,
            "score": [30.0] * len(ids),
            "segment": ["at_risk"] * len(ids),
            "arr": arr or [1000.0] * len(ids),
        }
    )


def test_a_fired_rule_carries_its_open_action_instead_of_opening_another() -> None:
    cfg = _cfg()
    first = advance(empty_state(), _fired([("A1", "Call", "high")], D1), _scored(["A1"]), cfg, D1)
    assert first.counts["new"] == 1
    later = D1 + timedelta(days=14)  # past the 7-day due date
    second = advance(
        first.state, _fired([("A1", "Call", "high")], later), _scored(["A1"]), cfg, later
    )
    row = second.state.row(0, named=True)
    assert second.state.height == 1
    assert row["action_id"] == action_id("A1", "Call", D1)  # the same action, not a new one
    assert (row["status"], row["opened_on"], row["weeks_open"], row["overdue"]) == (
        "open",
        D1,
        2,
        True,
    )
    assert second.counts == {**second.counts, "fired": 1, "new": 0, "carried": 1}


def test_done_blocks_its_rule_for_the_cooldown_then_it_may_open_again() -> None:
    cfg = _cfg(cooldown_days=28)
    first = advance(empty_state(), _fired([("A1", "Call", "high")], D1), _scored(["A1"]), cfg, D1)
    done = first.state.with_columns(
        status=pl.lit("done"), closed_on=pl.lit(D1), status_at=pl.lit(datetime(2025, 6, 3))
    )
    blocked = advance(done, _fired([("A1", "Call", "high")], D2), _scored(["A1"]), cfg, D2)
    assert blocked.counts["cooling"] == 1
    assert blocked.counts["fired"] == 0
    # the closed action is kept while it blocks, so the run after still knows it was done
    assert blocked.state["status"].to_list() == ["done"]
    d3 = D2 + timedelta(days=7)
    still = advance(blocked.state, _fired([("A1", "Call", "high")], d3), _scored(["A1"]), cfg, d3)
    assert (still.counts["cooling"], still.counts["new"]) == (1, 0)
    late = D1 + timedelta(days=28)  # closed_on + cooldown_days: the rule may fire again
    again = advance(still.state, _fired([("A1", "Call", "high")], late), _scored(["A1"]), cfg, late)
    assert again.counts["new"] == 1
    assert again.work["action_id"].to_list() == [action_id("A1", "Call", late)]


def test_capacity_defers_by_priority_then_arr_and_offers_deferred_first() -> None:
    cfg = _cfg(max_new_per_owner=2)
    fired = _fired([("A1", "Workshop", "low"), ("A2", "Call", "high"), ("A3", "Call", "high")], D1)
    first = advance(empty_state(), fired, _scored(["A1", "A2", "A3"], [9e6, 10.0, 20.0]), cfg, D1)
    # both high-priority calls open; the low-priority workshop waits despite its ARR
    assert sorted(first.work["account_id"]) == ["A2", "A3"]
    assert first.counts == {**first.counts, "fired": 3, "new": 2, "deferred": 1}
    fired2 = _fired([("A1", "Workshop", "low"), ("A4", "Call", "high"), ("A5", "Call", "high")], D2)
    second = advance(first.state, fired2, _scored(["A1", "A4", "A5"]), cfg, D2)
    opened = second.state.filter(pl.col("opened_on").is_not_null() & (pl.col("status") == "open"))
    new_now = opened.filter(pl.col("status_at") == datetime(2025, 6, 9))
    # the deferred workshop goes first; one of the two new calls takes the other slot
    assert "A1" in new_now["account_id"].to_list()
    assert new_now.height == 2
    assert second.counts["deferred"] == 1


def test_holdout_is_a_stable_share_and_never_work() -> None:
    cfg = _cfg(holdout_share=0.2)
    ids = [f"A{i:04d}" for i in range(1000)]
    fired = _fired([(a, "Call", "high") for a in ids], D1)
    run = advance(empty_state(), fired, _scored(ids), parse_cap(cfg), D1)
    held = run.state.filter(pl.col("status") == "holdout")["account_id"]
    assert 0.17 < held.len() / 1000 < 0.23
    assert not run.work["account_id"].is_in(held.implode()).any()
    rerun = advance(empty_state(), fired, _scored(ids), parse_cap(cfg), D2)
    assert (
        rerun.state.filter(pl.col("status") == "holdout")["account_id"].sort().equals(held.sort())
    )
    assert holdout_draw("chs-holdout", "A0001", "Call") != holdout_draw("other", "A0001", "Call")


def parse_cap(cfg: Config) -> Config:
    """The same config without a capacity limit."""
    s = cfg.playbook_settings.model_copy(update={"max_new_per_owner": 0})
    return cfg.model_copy(update={"playbook_settings": s})


def test_an_open_action_whose_rule_stopped_firing_expires_unless_worked() -> None:
    cfg = _cfg(expire_days=28)
    fired = _fired([("A1", "Call", "high"), ("A2", "Call", "high")], D1)
    first = advance(empty_state(), fired, _scored(["A1", "A2"]), cfg, D1)
    worked = first.state.with_columns(
        status=pl.when(pl.col("account_id") == "A2").then(pl.lit("in_progress")).otherwise("status")
    )
    late = D1 + timedelta(days=28)
    after = advance(worked, _fired([], late), _scored([]), cfg, late)
    assert dict(after.state.select("account_id", "status").iter_rows()) == {
        "A1": "expired",
        "A2": "in_progress",  # someone is working it
    }


def _updates(rows: list[tuple[str, str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "action_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "updated_at": [r[2] for r in rows],
            "author": ["me"] * len(rows),
            "note": [None] * len(rows),
            "snooze_until": [None] * len(rows),
        },
        schema=ACTION_UPDATES.schema,
    )


def test_updates_apply_once_and_unknown_ids_and_illegal_transitions_are_refused() -> None:
    cfg = _cfg()
    state = advance(
        empty_state(), _fired([("A1", "Call", "high")], D1), _scored(["A1"]), cfg, D1
    ).state
    aid = state["action_id"][0]
    t = datetime(2025, 6, 4, 10)
    ups = _updates([(aid, "done", t), (aid, "open", t + timedelta(hours=1)), ("nope", "done", t)])
    res = apply_updates(state, ups, [aid], D2)
    assert res.state["status"].to_list() == ["done"]
    assert res.applied == 1
    assert res.events[0]["author"] == "me"
    assert res.events[0]["previous"] == "open"
    assert sorted(res.rejected["reason"]) == [
        "action_id: nope is not an action of this pipeline",
        "status: done -> open is not a legal transition",
    ]
    # fed again next week, the same file changes nothing and refuses only what it refused
    again = apply_updates(res.state, ups.head(1), [aid], D2 + timedelta(days=7))
    assert again.applied == 0
    assert again.rejected.is_empty()
