"""History as a backfill pass sees it: the store, plus the dates the pass has computed so far."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import cast

import polars as pl

from tasks.history.schema import (
    RISK_COLUMNS,
    TREND_WEEKS,
    HistoryReader,
    Snapshot,
    conform,
    nearest,
    portfolio_trend,
    schema_of,
    snapshot_scores,
    trend_window,
)
from tasks.kpis import Kpis


class PassHistory:
    """History as a backfill sees it: the store, with the dates of this pass replaced.

    The dates are replaced as they are computed, so each date reads exactly what a run of it
    after the previous ones would.

    Given the pass's ``span`` (first and last date), it reads the stored KPIs and portfolio
    trend the pass can need once, up front, so while the pass stores a date in the background
    the next date reads the store only for scores of dates this pass did not compute.
    """

    def __init__(
        self,
        store: HistoryReader,
        keep_days: int | None = None,
        span: tuple[date, date] | None = None,
    ) -> None:
        self.store = store
        self.keep_days = keep_days  # scores older than this (behind the newest date) are dropped
        self._stored = store.dates()
        self._added: set[date] = set()
        self._scores: dict[date, pl.DataFrame] = {}
        self._kpis: dict[date, Kpis] = {}
        self._trend: dict[date, pl.DataFrame] = {}
        self._actions: dict[date, pl.DataFrame] = {}  # the latest computed date's actions
        self._action_ids: set[str] = set()
        self._openings: list[pl.DataFrame] = []
        self._loaded_from = date.max  # the stored KPIs and trend from here on are in memory
        self._stored_kpis: dict[date, Kpis] = {}
        self._stored_trend = pl.DataFrame()
        self._risk: dict[date, pl.DataFrame] = {}  # calibration's rows of the pass's dates
        self._stored_risk: pl.DataFrame | None = None  # ... and of the store, read up front
        self._runs: dict[date, str | None] = {}  # each date's config hash: stored, then this pass's
        # what the store held before this pass's first date, read once (action ids, openings)
        self._before_first: tuple[date, set[str], pl.DataFrame] | None = None
        if span is not None:
            first, last = span
            # history_context reads KPIs 13 weeks back and the trend TREND_WEEKS back
            self._loaded_from = first - timedelta(days=7 * max(13, TREND_WEEKS) + 7)
            self._stored_kpis = {
                date.fromisoformat(k["as_of"]): k
                for k in store.kpis_between(self._loaded_from, last)
            }
            self._stored_trend = store.trend(last, (last - self._loaded_from).days // 7 + 1)
            # sorted here once, so a date's read is a concatenation (see risk_history)
            self._stored_risk = store.risk_history(last).sort("as_of", "account_id")
            stored_runs = getattr(store, "runs", None)
            if callable(stored_runs):
                self._runs = dict(stored_runs().select("as_of", "config_hash").iter_rows())

    def add(self, snapshot: Snapshot) -> None:
        """Make a computed date visible to the dates after it (it may still be being stored)."""
        scores = snapshot_scores(snapshot)
        self._added.add(snapshot.as_of)
        self._scores[snapshot.as_of] = scores
        self._kpis[snapshot.as_of] = cast(Kpis, json.loads(json.dumps(snapshot.kpis)))
        self._trend[snapshot.as_of] = portfolio_trend(scores)
        acts = snapshot.actions
        if "action_id" in acts.columns:
            self._actions = {snapshot.as_of: acts}
            self._action_ids |= set(acts["action_id"].drop_nulls())
            self._openings.append(_openings(acts))
        self._risk[snapshot.as_of] = scores.select(RISK_COLUMNS)
        self._runs[snapshot.as_of] = snapshot.run.get("config_hash")
        if self.keep_days is not None:
            # a later date never reads these scores again; if one did, the store has them
            oldest = snapshot.as_of - timedelta(days=self.keep_days)
            for d in [d for d in self._scores if d < oldest]:
                del self._scores[d]

    def runs(self) -> pl.DataFrame:
        """Return each date's config hash, stored or computed in this pass (config marks)."""
        return pl.DataFrame(
            {"as_of": list(self._runs), "config_hash": list(self._runs.values())},
            schema={"as_of": pl.Date, "config_hash": pl.String},
        ).sort("as_of")

    def dates(self) -> list[date]:
        """Return every date in history or computed in this pass, oldest first."""
        return sorted(set(self._stored) | self._added)

    def scores_at(self, as_of: date) -> pl.DataFrame:
        """Return one date's scores, from this pass when it computed the date."""
        found = self._scores.get(as_of)
        return found if found is not None else self.store.scores_at(as_of)

    def scores_near(self, target: date, tolerance_days: int) -> pl.DataFrame | None:
        """Return the scores of the date nearest ``target`` (None when there is none)."""
        found = nearest(self.dates(), target, tolerance_days)
        return None if found is None else self.scores_at(found)

    def kpis_between(self, start: date, end: date) -> list[Kpis]:
        """Return the KPIs of every date in [start, end], oldest first."""
        if start >= self._loaded_from:
            by_date = {d: k for d, k in self._stored_kpis.items() if start <= d <= end}
        else:
            stored = self.store.kpis_between(start, end)
            by_date = {date.fromisoformat(k["as_of"]): k for k in stored}
        by_date |= {d: k for d, k in self._kpis.items() if start <= d <= end}
        return [by_date[d] for d in sorted(by_date)]

    def trend(self, as_of: date, weeks: int = TREND_WEEKS) -> pl.DataFrame:
        """Return the portfolio trend of ``weeks`` weeks up to ``as_of``."""
        start, end = trend_window(as_of, weeks)
        if start >= self._loaded_from:
            stored = self._stored_trend.filter(pl.col("as_of").is_between(start, end))
        else:
            stored = self.store.trend(as_of, weeks)
        stored = stored.filter(
            ~pl.col("as_of").is_in(pl.Series(list(self._trend), dtype=pl.Date).implode())
        )
        ours = [t for d, t in self._trend.items() if start <= d <= end]
        return pl.concat([stored, *ours]).sort("as_of")

    def risk_history(self, end: date) -> pl.DataFrame:
        """Return the scores calibration trains on up to ``end``, this pass's dates included."""
        stored = (
            self._stored_risk if self._stored_risk is not None else self.store.risk_history(end)
        )
        ours = pl.Series(list(self._risk), dtype=pl.Date)
        stored = stored.filter((pl.col("as_of") <= end) & ~pl.col("as_of").is_in(ours))
        mine = sorted(d for d in self._risk if d <= end)
        parts = [stored, *(self._risk[d] for d in mine)]
        if (
            self._stored_risk is not None
            and mine
            and not stored.filter(pl.col("as_of") >= mine[0]).height
        ):
            # each part is sorted by account and the dates follow each other: already in order
            # (a sort of millions of rows per date by the end of a 52-week backfill)
            return pl.concat(parts)
        return pl.concat(parts).sort("as_of", "account_id")

    def actions_before(self, as_of: date) -> pl.DataFrame:
        """Return the actions of the latest date before ``as_of``, from this pass when it has it."""
        before = [d for d in self.dates() if d < as_of]
        latest = max(before, default=None)
        if latest is not None and latest in self._actions:
            return conform(self._actions[latest], "action_history")
        return self.store.actions_before(as_of)

    def _stored_before_first(self, as_of: date) -> tuple[set[str], pl.DataFrame] | None:
        """Return the store's action ids and openings before this pass's first date, read once.

        With them and this pass's own, a date reads nothing else from the store, which this
        pass is writing to (a query per date over a growing table). None when the store has a
        date from the pass's first date up to ``as_of`` that the pass did not compute.
        """
        first = min(self._added, default=None)
        if first is None or any(first <= d < as_of and d not in self._added for d in self._stored):
            return None
        if self._before_first is None or self._before_first[0] != first:
            ids = self.store.action_ids_before(first)
            openings = self.store.action_openings(first - timedelta(days=1))
            self._before_first = (first, ids, openings)
        return self._before_first[1], self._before_first[2]

    def action_ids_before(self, as_of: date) -> set[str]:
        """Return every action id stored or computed in this pass (a pass runs oldest first)."""
        found = self._stored_before_first(as_of)
        stored = found[0] if found is not None else self.store.action_ids_before(as_of)
        return stored | self._action_ids

    def action_openings(self, until: date) -> pl.DataFrame:
        """Return each action's opening row up to ``until``, stored or computed in this pass."""
        found = self._stored_before_first(until + timedelta(days=1))
        stored = found[1] if found is not None else self.store.action_openings(until)
        parts = [stored, *self._openings]
        both = pl.concat([conform_openings(p) for p in parts], how="vertical")
        return both.filter(pl.col("opened_on") <= until).unique("action_id", keep="first")

    def scores_between(self, start: date, end: date) -> pl.DataFrame:
        """Return stored score rows of [start, end] (the pass stores each date before the next
        but one, and the effectiveness reads only dates weeks old).
        """
        return self.store.scores_between(start, end)


_OPENING_COLUMNS = [
    "account_id",
    "action",
    "action_id",
    "opened_on",
    "holdout",
    "opened_score",
    "opened_segment",
]


def conform_openings(df: pl.DataFrame) -> pl.DataFrame:
    """Select and type the columns of actions' opening rows."""
    return df.select(_OPENING_COLUMNS).cast(schema_of("action_history", _OPENING_COLUMNS))


def _openings(actions: pl.DataFrame) -> pl.DataFrame:
    return conform_openings(actions.filter(pl.col("as_of") == pl.col("opened_on")))
