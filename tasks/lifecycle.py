"""Actions with a lifecycle (SPEC 10.1): fired rules -> actions that are carried, capped and held out.

``recommend`` (tasks/actions.py) says which playbooks fire this week; ``advance`` turns that into
work. It starts from the actions of the previous run (their state as stored in history, so a
re-run of a past date starts from what was true then), applies the status updates people made
since (``action_updates``), and then:

- a fired rule with a live action of the same playbook on the account carries it (no second one);
- a done or dismissed action blocks its rule for ``cooldown_days`` (``cooling``, not fired work);
- a snoozed action comes back as ``open`` once its ``snooze_until`` has passed;
- a newly qualifying account is held out (``holdout``) by a keyed hash of account and playbook,
  so the same accounts land in the group on every run and date;
- the other new ones are ranked per owner (deferred ones from earlier runs first, then priority,
  then ARR at risk) and the first ``max_new_per_owner`` open; the rest are ``deferred``;
- an unworked action whose rule has not fired for ``expire_days`` is ``expired``.

Every status change is an event with its time, author and note.

Over 400 lines on purpose: the whole state machine of an action (statuses, transitions,
carrying, capacity, hold-out) reads top-down in one file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl

from tasks.actions import PRIORITY_ORDER
from tasks.config import Config
from tasks.schemas import ACTION_UPDATES

LIVE = ("open", "in_progress", "snoozed", "deferred", "holdout")  # not closed
COOLING = ("done", "dismissed")  # block their rule for cooldown_days
WORK = ("open", "in_progress")  # what a CSM is shown as work
LISTED = ("open", "in_progress", "snoozed", "deferred")  # the rows of actions.csv
# the statuses a person may move an action to, by its current status
LEGAL: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "done", "dismissed", "snoozed"}),
    "in_progress": frozenset({"open", "done", "dismissed", "snoozed"}),
    "snoozed": frozenset({"open", "in_progress", "done", "dismissed", "snoozed"}),
    "deferred": frozenset({"open", "in_progress", "done", "dismissed", "snoozed"}),
}

STATE_SCHEMA = pl.Schema(
    {
        "account_id": pl.String(),
        "as_of": pl.Date(),
        "action": pl.String(),
        "reason": pl.String(),
        "owner": pl.String(),
        "priority": pl.String(),
        "due_date": pl.Date(),
        "action_id": pl.String(),
        "status": pl.String(),
        "opened_on": pl.Date(),
        "weeks_open": pl.Int64(),
        "overdue": pl.Boolean(),
        "status_at": pl.Datetime("us"),  # when the status last changed
        "snooze_until": pl.Date(),
        "closed_on": pl.Date(),
        "last_fired": pl.Date(),
        "holdout": pl.Boolean(),
        "opened_score": pl.Float64(),
        "opened_segment": pl.String(),
        "arr": pl.Float64(),
    }
)
EVENT_SCHEMA = pl.Schema(
    {
        "as_of": pl.Date(),
        "action_id": pl.String(),
        "account_id": pl.String(),
        "action": pl.String(),
        "owner": pl.String(),
        "status": pl.String(),
        "previous": pl.String(),
        "changed_at": pl.Datetime("us"),
        "author": pl.String(),
        "note": pl.String(),
        "source": pl.String(),  # rule, update or pipeline
    }
)
COUNTS = ("fired", "new", "carried", "deferred", "holdout", "cooling", "expired", "updated")


def action_id(account_id: str, action: str, opened_on: date) -> str:
    """Return the stable id of the action a playbook opens for an account on a date."""
    key = f"{account_id}\x1f{action}\x1f{opened_on.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def holdout_draw(key: str, account_id: str, action: str) -> float:
    """Return the account's stable draw in [0, 1) for a playbook: held out when below the share."""
    digest = hashlib.sha256(f"{key}\x1f{account_id}\x1f{action}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def holdout_share(cfg: Config, action: str) -> float:
    """Return the hold-out share of a playbook (its own setting, else ``[actions]``'s)."""
    rule = next((r for r in cfg.actions if r.action == action), None)
    if rule is not None and rule.holdout_share is not None:
        return rule.holdout_share
    return cfg.playbook_settings.holdout_share


def empty_state() -> pl.DataFrame:
    """Return an empty frame of action states."""
    return pl.DataFrame(schema=STATE_SCHEMA)


def _start(as_of: date) -> datetime:
    return datetime.combine(as_of, time.min)


@dataclass
class UpdateResult:
    """What the status updates did: the state after them, their events and the rejected rows."""

    state: pl.DataFrame
    events: list[dict[str, Any]]
    rejected: pl.DataFrame  # the update rows, with a reason
    applied: int


def _reject_reason(row: dict[str, Any], current: dict[str, Any] | None, known: bool) -> str | None:
    status = row["status"]
    if current is None:
        if known:
            return f"action_id: {row['action_id']} is closed; a closed action cannot change"
        return f"action_id: {row['action_id']} is not an action of this pipeline"
    now = current["status"]
    if status == "snoozed" and row.get("snooze_until") is None:
        return "snooze_until: a snoozed action needs the date it returns"
    if status != now and status not in LEGAL.get(now, frozenset()):
        if now == "holdout":
            return f"status: {row['action_id']} is in a hold-out group and cannot be worked"
        return f"status: {now} -> {status} is not a legal transition"
    return None


def apply_updates(
    state: pl.DataFrame, updates: pl.DataFrame | None, known_ids: Iterable[str], as_of: date
) -> UpdateResult:
    """Apply people's status updates, oldest first; an update older than the action's last
    status change was applied before (or superseded) and changes nothing.
    """
    if updates is None or updates.is_empty():
        none = pl.DataFrame(schema={**dict(ACTION_UPDATES.schema.items()), "reason": pl.String()})
        return UpdateResult(state, [], none, 0)
    rows = {r["action_id"]: r for r in state.iter_rows(named=True)}
    known = set(known_ids)
    events: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    applied = 0
    ordered = updates.with_row_index("_i").sort("updated_at", "_i")
    for u in ordered.iter_rows(named=True):
        current = rows.get(u["action_id"])
        why = _reject_reason(u, current, u["action_id"] in known)
        if why is not None:
            bad.append((u["_i"], why))
            continue
        assert current is not None
        if current["status_at"] is not None and u["updated_at"] <= current["status_at"]:
            continue  # already applied by an earlier run
        same = u["status"] == current["status"] and u["status"] != "snoozed"
        if same:
            continue
        events.append(
            _event(
                current,
                as_of,
                u["status"],
                u["updated_at"],
                "update",
                u.get("author"),
                u.get("note"),
            )
        )
        closed = u["status"] in COOLING
        current.update(
            status=u["status"],
            status_at=u["updated_at"],
            snooze_until=u.get("snooze_until") if u["status"] == "snoozed" else None,
            closed_on=u["updated_at"].date() if closed else None,
        )
        applied += 1
    out = pl.DataFrame(list(rows.values()), schema=STATE_SCHEMA) if rows else state
    idx = pl.Series("_i", [i for i, _ in bad], dtype=pl.UInt32)
    rejected = (
        updates.with_row_index("_i")
        .join(pl.DataFrame({"_i": idx, "reason": [w for _, w in bad]}), on="_i")
        .drop("_i")
    )
    return UpdateResult(out, events, rejected, applied)


def _event(
    row: dict[str, Any],
    as_of: date,
    status: str,
    at: datetime,
    source: str,
    author: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "as_of": as_of,
        "action_id": row["action_id"],
        "account_id": row["account_id"],
        "action": row["action"],
        "owner": row["owner"],
        "status": status,
        "previous": row.get("status"),
        "changed_at": at,
        "author": author,
        "note": note,
        "source": source,
    }


@dataclass
class Advanced:
    """One run of the lifecycle: every action after it, the status changes, and the counts."""

    state: pl.DataFrame  # live actions, and closed ones still blocking their rule (history rows)
    events: pl.DataFrame
    counts: dict[str, int]

    @property
    def listed(self) -> pl.DataFrame:
        """Return the rows of actions.csv: every action a CSM may see (not held out, not closed)."""
        return self.state.filter(pl.col("status").is_in(LISTED))

    @property
    def work(self) -> pl.DataFrame:
        """Return the actions a CSM is asked to work on this week."""
        return self.state.filter(pl.col("status").is_in(WORK))


def _context(fired: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
    """Add each fired row's score, segment and ARR (for the ranking and the effectiveness)."""
    cols = [pl.col("account_id").cast(pl.String)]
    for c, t in (("score", pl.Float64), ("segment", pl.String), ("arr", pl.Float64)):
        cols.append(pl.col(c).cast(t) if c in scored.columns else pl.lit(None, t).alias(c))
    ctx = scored.select(cols).unique("account_id", keep="first")
    return fired.join(ctx, on="account_id", how="left")


def _new_rows(fresh: pl.DataFrame, cfg: Config, as_of: date) -> pl.DataFrame:
    """Open brand-new actions: their ids and whether the account is held out."""
    key = cfg.playbook_settings.holdout_key
    rows = fresh.select("account_id", "action").rows()
    ids = [action_id(a, p, as_of) for a, p in rows]
    held = [holdout_draw(key, a, p) < holdout_share(cfg, p) for a, p in rows]
    return fresh.with_columns(
        pl.Series("action_id", ids, dtype=pl.String),
        pl.Series("holdout", held, dtype=pl.Boolean),
        pl.lit(as_of).alias("opened_on"),
        pl.col("score").alias("opened_score"),
        pl.col("segment").alias("opened_segment"),
        pl.lit(None, pl.String).alias("status"),
        pl.lit(None, pl.Datetime("us")).alias("status_at"),
        pl.lit(None, pl.Date).alias("snooze_until"),
        pl.lit(None, pl.Date).alias("closed_on"),
    )


def _rank(candidates: pl.DataFrame, cap: int) -> pl.DataFrame:
    """Mark the first ``cap`` candidates of each owner as opened: deferred ones from earlier
    runs first, then by priority, then by ARR at risk (0: no limit).
    """
    order = pl.col("priority").replace_strict(PRIORITY_ORDER, default=9, return_dtype=pl.Int8)
    ranked = candidates.with_columns(
        (pl.col("status") != "deferred").fill_null(True).alias("_fresh"), order.alias("_prio")
    ).sort(
        "owner",
        "_fresh",
        "_prio",
        "arr",
        "account_id",
        "action",
        descending=[False, False, False, True, False, False],
        nulls_last=True,
    )
    n = pl.int_range(pl.len()).over("owner")
    admitted = (n < cap) if cap > 0 else pl.lit(True)
    return ranked.with_columns(admitted.alias("_admit")).drop("_fresh", "_prio")


def _events_of(
    df: pl.DataFrame, as_of: date, status: str, source: str, note: str | None = None
) -> pl.DataFrame:
    return df.select(
        pl.lit(as_of).alias("as_of"),
        "action_id",
        "account_id",
        "action",
        "owner",
        pl.lit(status).alias("status"),
        pl.col("status").alias("previous"),
        pl.lit(_start(as_of)).alias("changed_at"),
        pl.lit(None, pl.String).alias("author"),
        pl.lit(note, pl.String).alias("note"),
        pl.lit(source).alias("source"),
    ).cast(dict(EVENT_SCHEMA.items()))


def advance(
    state: pl.DataFrame, fired: pl.DataFrame, scored: pl.DataFrame, cfg: Config, as_of: date
) -> Advanced:
    """Turn this run's fired rules into actions, starting from the previous run's actions."""
    s = cfg.playbook_settings
    start, key = _start(as_of), ["account_id", "action"]
    st = status = pl.col("status")
    # snoozes that ended come back; closed actions past their cooldown are forgotten
    back = (st == "snoozed") & (pl.col("snooze_until") <= as_of)
    events = [_events_of(state.filter(back), as_of, "open", "pipeline", "snooze ended")]
    state = state.with_columns(
        pl.when(back).then(pl.lit("open")).otherwise(st).alias("status"),
        pl.when(back).then(pl.lit(start)).otherwise(pl.col("status_at")).alias("status_at"),
        pl.when(back).then(None).otherwise(pl.col("snooze_until")).alias("snooze_until"),
    ).filter(
        st.is_in(LIVE)
        | (st.is_in(COOLING) & (pl.col("closed_on") > as_of - timedelta(days=s.cooldown_days)))
    )
    live = state.filter(st.is_in(LIVE))
    fired = _context(fired, scored).unique(key, keep="first", maintain_order=True)
    old = live.drop("reason", "owner", "priority", "as_of", "arr").rename({"due_date": "_due"})
    matched = fired.join(old, on=key, how="inner").with_columns(pl.lit(as_of).alias("last_fired"))
    rest = fired.join(live, on=key, how="anti")
    cooling = rest.join(state.filter(st.is_in(COOLING)), on=key, how="semi")
    fresh = _new_rows(rest.join(cooling, on=key, how="anti"), cfg, as_of)
    held = fresh.filter(pl.col("holdout")).with_columns(
        pl.lit("holdout").alias("status"), pl.lit(start).alias("status_at")
    )
    # a carried action keeps the due date it opened with, so it can become overdue
    carried = matched.filter(st.is_in(("open", "in_progress", "snoozed", "holdout"))).with_columns(
        pl.col("_due").alias("due_date")
    )
    candidates = pl.concat(
        [matched.filter(st == "deferred"), fresh.filter(~pl.col("holdout"))], how="diagonal_relaxed"
    )
    ranked = _rank(candidates, s.max_new_per_owner)
    admitted, deferred = ranked.filter(pl.col("_admit")), ranked.filter(~pl.col("_admit"))
    events += [
        _events_of(admitted, as_of, "open", "rule"),
        _events_of(deferred.filter(st.is_null()), as_of, "deferred", "rule"),
        _events_of(held, as_of, "holdout", "rule"),
    ]
    opened = admitted.with_columns(pl.lit("open").alias("status"), pl.lit(start).alias("status_at"))
    # a deferred one keeps the due date it gets once it opens
    waiting = deferred.with_columns(
        pl.lit("deferred").alias("status"),
        pl.when(st.is_null()).then(pl.lit(start)).otherwise(pl.col("status_at")).alias("status_at"),
    )
    unfired = state.join(fired, on=key, how="anti")
    stale = pl.col("last_fired") <= as_of - timedelta(days=s.expire_days)
    expiring = st.is_in(("open", "deferred", "holdout")) & stale
    events.append(
        _events_of(unfired.filter(expiring), as_of, "expired", "pipeline", "rule stopped firing")
    )
    unfired = unfired.with_columns(
        pl.when(expiring).then(pl.lit("expired")).otherwise(st).alias("status"),
        pl.when(expiring).then(pl.lit(start)).otherwise(pl.col("status_at")).alias("status_at"),
        pl.when(expiring).then(pl.lit(as_of)).otherwise(pl.col("closed_on")).alias("closed_on"),
    )
    fired_rows = [
        df.with_columns(pl.lit(as_of).alias("last_fired")) for df in (opened, waiting, held)
    ]
    # a closed action whose rule fired again stays in the state: it blocks the rule next run too
    blocking = state.filter(st.is_in(COOLING)).join(cooling, on=key, how="semi")
    out = pl.concat([carried, *fired_rows, unfired, blocking], how="diagonal_relaxed")
    out = _finish(out, as_of)
    counts = {
        "new": opened.height,
        "carried": carried.filter(status != "holdout").height,
        "deferred": waiting.height,
        "holdout": held.height + carried.filter(status == "holdout").height,
        "cooling": cooling.height,
        "expired": int(unfired.select(expiring.sum()).item()),
    }
    counts["fired"] = counts["new"] + counts["carried"] + counts["deferred"] + counts["holdout"]
    ev = (
        pl.concat([e for e in events if e.height], how="vertical")
        if any(e.height for e in events)
        else pl.DataFrame(schema=EVENT_SCHEMA)
    )
    return Advanced(out, ev, counts)


def _finish(df: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Set the derived columns and the schema: weeks open, overdue, the run's date."""
    st = pl.col("status")
    # an action opens with the due date of the run that opens it (a deferred one: when admitted)
    return (
        df.with_columns(
            pl.lit(as_of).alias("as_of"),
            ((pl.lit(as_of) - pl.col("opened_on")).dt.total_days() // 7)
            .cast(pl.Int64)
            .alias("weeks_open"),
            (st.is_in(WORK) & (pl.lit(as_of) > pl.col("due_date")))
            .fill_null(False)
            .alias("overdue"),
        )
        .select([pl.col(c).cast(t) for c, t in STATE_SCHEMA.items()])
        .sort(
            st.replace_strict(
                {s: i for i, s in enumerate((*WORK, "snoozed", "deferred", "holdout"))},
                default=9,
                return_dtype=pl.Int8,
            ),
            pl.col("priority").replace_strict(PRIORITY_ORDER, default=9, return_dtype=pl.Int8),
            "due_date",
            "account_id",
            "action",
            nulls_last=True,
        )
    )
