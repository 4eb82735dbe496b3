"""One run of the closed loop: status updates, lifecycle and effectiveness, around the rules.

``run_loop`` is what the flows call after ``recommend``: it reads the previous run's actions
from the history context, applies the accepted ``action_updates`` (moving unknown ids and
illegal transitions to the dataset's quarantine, so its counts still reconcile), advances the
lifecycle and measures each playbook against its hold-out group.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.csvfile import unguarded
from tasks.effectiveness import effectiveness
from tasks.history.context import HistoryContext
from tasks.lifecycle import STATE_SCHEMA, Advanced, advance, apply_updates, empty_state
from tasks.validate import ValidatedDataset

_LIFECYCLE_CHECKS = {
    "action_id": ("known_action_id", "the action_id must name an action of this pipeline"),
    "status": ("legal_status_transition", "a closed or held-out action cannot change status"),
    "snooze_until": ("snooze_until_when_snoozed", "a snoozed action needs the date it returns"),
}


@dataclass
class LoopRun:
    """The lifecycle of one run, the validated datasets (updates re-split) and effectiveness."""

    advanced: Advanced
    validated: dict[str, ValidatedDataset]
    effectiveness: dict[str, Any]
    updated: int


def _requarantine(v: ValidatedDataset, rejected: pl.DataFrame) -> ValidatedDataset:
    """Move the updates the lifecycle refused from accepted to quarantined, with reasons."""
    if rejected.is_empty():
        return v
    cols = [c for c in v.accepted.columns]
    accepted = v.accepted.with_row_index("_i").join(
        rejected.with_row_index("_j").select("_j", *cols), on=cols, how="anti", nulls_equal=True
    )
    moved = rejected.select(pl.lit(None, pl.Int64).alias("source_row"), "reason", *cols)
    quarantined = pl.concat([v.quarantined, moved], how="diagonal_relaxed")
    failed = list(v.failed)
    for column, (name, why) in _LIFECYCLE_CHECKS.items():
        n = rejected.filter(pl.col("reason").str.starts_with(f"{column}:")).height
        if n:
            failed.append({"expectation": name, "column": column, "count": n, "reason": why})
    return replace(v, accepted=accepted.drop("_i"), quarantined=quarantined, failed=failed)


def run_loop(
    cfg: Config,
    fired: pl.DataFrame,
    scored: pl.DataFrame,
    validated: dict[str, ValidatedDataset],
    history: HistoryContext,
    as_of: date,
) -> LoopRun:
    """Carry, open, defer, hold out and expire this run's actions; measure the playbooks."""
    prev = history.actions
    state = empty_state() if prev is None else prev.select(list(STATE_SCHEMA)).cast(STATE_SCHEMA)
    upd = validated.get("action_updates")
    # the updates may be an edited `chs actions export`: its text is read as it was before
    # the CSV writer's formula guard (tasks/csvfile.py)
    edits = unguarded(upd.accepted) if upd else None
    done = apply_updates(state, edits, history.action_ids, as_of)
    out = dict(validated)
    if upd is not None:
        out["action_updates"] = _requarantine(upd, done.rejected)
    advanced = advance(done.state, fired, scored, cfg, as_of)
    if done.events:
        manual = pl.DataFrame(done.events, schema=advanced.events.schema)
        events = pl.concat([manual, advanced.events], how="vertical")
        advanced = replace(advanced, events=events)
    advanced.counts["updated"] = done.applied
    accounts = validated["accounts"].accepted
    effect = effectiveness(history.openings, history.effect_scores, accounts, cfg, as_of)
    return LoopRun(advanced, out, effect, done.applied)
