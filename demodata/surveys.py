"""The demo's survey answers (NPS, CSAT, CES with comments) and quarterly goal outcomes."""

from __future__ import annotations

import numpy as np
import polars as pl

from demodata.crm import finish
from demodata.population import (
    SURVEYS,
    Population,
    Window,
    account_years,
    day_clock,
    health_at,
    sample_points,
    to_ts,
)
from tasks.schemas import SURVEY_RESPONSES

_SURVEY_P = (0.5, 0.3, 0.2)
_COMMENTS_BAD = (
    "Too slow when exporting large reports, please fix.",
    'Billing charged us twice, and "support" took a week to answer.',
    "We are evaluating alternatives.",
    "Très déçu: the API keeps timing out.",
    "Nobody on our team uses it anymore, it's too complicated.",
)
_COMMENTS_MEH = (
    "Does the job, but reporting could be more flexible.",
    'The "export to Excel" option is hidden, took a while to find.',
    "Fine overall; onboarding felt a bit long.",
    "Pricing is OK, features are OK.",
)
_COMMENTS_GOOD = (
    "Great product, the dashboards save us hours every week.",
    'Love the new "Insights" tab!',
    "Support was fast and friendly — merci, Zoë!",
    "We use it in every café location; the team loves it.",
    "Easy to roll out, even for non-technical staff.",
)
_GOALS = (
    "hours_saved_per_month",
    "reports_automated",
    "weekly_active_users",
    "dashboards_adopted",
    "teams_onboarded",
)
_GOAL_BASE = np.array([12.0, 3.0, 4.0, 1.5, 0.4])  # target per sqrt(seat)


def surveys_frame(rng: np.random.Generator, pop: Population, win: Window) -> pl.DataFrame:
    """Return NPS/CSAT/CES responses in canonical columns, scores following health."""
    n = pop.n
    part = np.where(rng.random(n) < 0.15, 0.0, rng.lognormal(0.0, 0.5, n))
    cluster = (rng.random(n) < 0.05) & (pop.expand == 0)  # detractor clusters
    recent = win.days - 120

    def weight(a: np.ndarray, t: np.ndarray, m: int) -> np.ndarray:
        boost = np.where(cluster[a] & (t >= recent), 3.0, 1.0)
        w: np.ndarray = part[a] * (0.4 + health_at(pop, a, t, m)) * boost
        return w

    a, d = sample_points(rng, pop, win, weight, 2.0 * account_years(pop))
    s = day_clock(rng, len(a), 14.0, 3.5)
    h = health_at(pop, a, d + s / 86400.0, win.month_of(d))
    h = h - 0.3 * (cluster[a] & (d >= recent))
    kind = rng.choice(3, len(a), p=_SURVEY_P)
    score = _survey_scores(rng, kind, h)
    pool = np.minimum(pop.seats[a], 6)
    who = np.floor(pool * rng.random(len(a)) ** 1.5).astype(np.int64) + 1
    frame = pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "survey": pl.Series(SURVEYS).gather(kind),
            "score": score,
            "submitted_at": to_ts(win, d, s),
            "who": who,
            "comment": _comments(rng, kind, score),
        }
    ).with_columns(
        respondent_id=pl.concat_str(
            pl.col("account_id"), pl.lit("-U"), pl.col("who").cast(pl.String).str.zfill(3)
        )
    )
    return finish(frame, "submitted_at", "response_id", "R", SURVEY_RESPONSES.schema)


def _survey_scores(rng: np.random.Generator, kind: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Return integer scores on each survey's scale (NPS 0-10, CSAT 1-5, CES 1-7)."""
    k = len(kind)
    nps = np.clip(np.round(2.5 + 8.5 * h + rng.normal(0.0, 1.4, k)), 0, 10)
    csat = np.clip(np.round(1.3 + 4.0 * h + rng.normal(0.0, 0.7, k)), 1, 5)
    ces = np.clip(np.round(1.6 + 5.6 * h + rng.normal(0.0, 1.0, k)), 1, 7)
    return np.choose(kind, [nps, csat, ces])


def _comments(rng: np.random.Generator, kind: np.ndarray, score: np.ndarray) -> pl.Series:
    """Return a short free-text comment for about a third of responses, by sentiment."""
    lo, hi = np.array([0.0, 1.0, 1.0])[kind], np.array([10.0, 5.0, 7.0])[kind]
    mood = np.digitize((score - lo) / (hi - lo), [0.45, 0.75])
    pools = (_COMMENTS_BAD, _COMMENTS_MEH, _COMMENTS_GOOD)
    offsets = np.cumsum([0] + [len(p) for p in pools])
    pick = offsets[mood] + np.floor(rng.random(len(kind)) * np.diff(offsets)[mood]).astype(int)
    text = pl.Series([c for p in pools for c in p], dtype=pl.String).gather(pick)
    has = pl.Series(rng.random(len(kind)) < 0.35)
    return pl.select(pl.when(has).then(text)).to_series().alias("comment")


def outcomes_frame(rng: np.random.Generator, pop: Population, win: Window) -> pl.DataFrame:
    """Return quarterly goal measurements for about 60% of accounts."""
    n = pop.n
    tracked = rng.random(n) < np.array([0.90, 0.75, 0.55])[pop.tier]
    two = rng.random(n) < 0.5
    g1 = rng.integers(0, len(_GOALS), n)
    g2 = (g1 + rng.integers(1, len(_GOALS), n)) % len(_GOALS)
    a = np.concatenate([np.flatnonzero(tracked), np.flatnonzero(tracked & two)])
    goal = np.concatenate([g1[tracked], g2[tracked & two]])
    target = np.round(_GOAL_BASE[goal] * np.sqrt(pop.seats[a]) * rng.lognormal(0, 0.3, len(a)))
    target = np.maximum(target, 1.0)
    q = win.quarter_ends()
    day = np.tile(q, len(a))
    a, goal, target = np.repeat(a, len(q)), np.repeat(goal, len(q)), np.repeat(target, len(q))
    keep = (day >= pop.cs_day[a] + 45) & (day < pop.stop[a])
    a, goal, target, day = a[keep], goal[keep], target[keep], day[keep]
    h = health_at(pop, a, day.astype(float), win.month_of(day))
    ratio = np.clip(0.25 + 0.95 * h + rng.normal(0.0, 0.1, len(a)), 0.0, 1.6)
    frame = pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "goal": pl.Series(_GOALS, dtype=pl.String).gather(goal),
            "target": target,
            "actual": np.round(target * ratio, 1),
            "measured_at": to_ts(win, day, day_clock(rng, len(a), 16.0, 1.0)),
        }
    )
    return frame.sort(["measured_at", "account_id", "goal"])
