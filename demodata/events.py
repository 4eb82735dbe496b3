"""The demo's product events, one Parquet file per calendar month, written month by month."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from demodata.population import (
    US_PER_DAY,
    Population,
    Window,
    day_clock,
    health_at,
    intensity,
    month_span,
    place,
)
from tasks.schemas import TS

# Ordered by how early customers adopt them: an account using k features uses the first k.
_EVENTS = (
    "login",
    "view_dashboard",
    "create_report",
    "export",
    "share",
    "configure_alert",
    "invite_user",
    "api_call",
)
_EVENT_WEIGHTS = np.array([0.28, 0.30, 0.12, 0.08, 0.07, 0.05, 0.03, 0.07])
_EVENT_PROPS: dict[str, tuple[str, str, str]] = {
    "export": ('{"format": "csv"}', '{"format": "xlsx"}', '{"format": "pdf"}'),
    "api_call": (
        '{"endpoint": "/v2/reports"}',
        '{"endpoint": "/v2/metrics"}',
        '{"endpoint": "/v2/users"}',
    ),
}


def write_events(
    rng: np.random.Generator, pop: Population, win: Window, per_account: int, folder: Path
) -> int:
    """Write one Parquet file of product events per month; return the number of events."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events-*.parquet"):
        old.unlink()  # a stale month would otherwise be read by the analytics glob
    tracked = rng.random(pop.n) >= 0.03  # some accounts never installed the analytics
    users = _user_pools(rng, pop)
    # events follow the people using the product: a licensed user is about equally active in
    # a small and a large account (large ones a little less: more occasional users)
    weight = users.astype(float) ** 0.8 * rng.lognormal(0.0, 0.25, pop.n) * tracked
    cum = _feature_mix(rng, pop)
    rate = per_account * pop.n / max(_expected_usage(pop, win, weight), 1e-12)
    total = 0
    for m in range(win.months):
        frame = _month_events(rng, pop, win, m, rate * weight, users, cum)
        frame.write_parquet(folder / f"events-{win.labels[m]}.parquet", compression="zstd")
        total += frame.height
    return total


def _user_pools(rng: np.random.Generator, pop: Population) -> np.ndarray:
    """Return how many distinct users each account has.

    Most accounts use most of what they bought (healthier ones more: about 70-95% of seats);
    seat under-use (shelfware, 8-35% of seats) is planted in about 10% of accounts.
    """
    under = rng.random(pop.n) < 0.10
    util = np.where(
        under,
        rng.uniform(0.08, 0.35, pop.n),
        np.clip(0.55 + 0.4 * pop.h0 + rng.normal(0.0, 0.08, pop.n), 0.35, 1.0),
    )
    return np.maximum(1, np.round(pop.seats * util)).astype(np.int64)


def _feature_mix(rng: np.random.Generator, pop: Population) -> np.ndarray:
    """Return per-account cumulative event-name probabilities; healthier use more features."""
    k = np.clip(np.round(2 + 6 * pop.h0 + rng.normal(0.0, 1.0, pop.n)), 2, len(_EVENTS))
    w = _EVENT_WEIGHTS[None, :] * (np.arange(len(_EVENTS))[None, :] < k[:, None])
    cum = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1).astype(np.float32)
    cum[:, -1] = 1.0
    return cum


def _expected_usage(pop: Population, win: Window, weight: np.ndarray) -> float:
    """Return the expected number of events per unit rate (Simpson's rule per month)."""
    every, total = np.arange(pop.n), 0.0
    for m in range(win.months):
        lo, hi = month_span(pop, win, m)
        mass = win.cum_dw[hi] - win.cum_dw[lo]
        ts = (lo.astype(float), (lo + hi) / 2, hi.astype(float))
        u = [intensity(pop, every, t, health_at(pop, every, t, m)) for t in ts]
        total += float((weight * mass * (u[0] + 4 * u[1] + u[2]) / 6).sum())
    return total


def _month_events(
    rng: np.random.Generator,
    pop: Population,
    win: Window,
    m: int,
    rate: np.ndarray,
    users: np.ndarray,
    cum: np.ndarray,
) -> pl.DataFrame:
    """Draw one month of events by thinning a Poisson process at each account's peak rate."""
    every = np.arange(pop.n)
    lo, hi = month_span(pop, win, m)
    # Health is monotone within a month and ramp/expansion only grow, so this bounds the rate.
    h_lo = health_at(pop, every, lo.astype(float), m)
    h_hi = health_at(pop, every, hi.astype(float), m)
    peak = intensity(pop, every, hi.astype(float), np.maximum(h_lo, h_hi))
    a = np.repeat(every, rng.poisson(rate * peak * (win.cum_dw[hi] - win.cum_dw[lo])))
    day = place(rng, win, lo[a], hi[a])
    ms = np.floor(day_clock(rng, len(a), 13.0, 3.2) * 1000 + rng.integers(0, 1000, len(a)))
    t = day + ms / 86_400_000.0
    h = health_at(pop, a, t, m)
    u = intensity(pop, a, t, h)
    keep = rng.random(len(a)) * peak[a] < u
    a, day, ms, h = a[keep], day[keep], ms[keep], h[keep]
    return _event_frame(rng, pop, win, a, day, ms, h, users, cum)


def _event_frame(
    rng: np.random.Generator,
    pop: Population,
    win: Window,
    a: np.ndarray,
    day: np.ndarray,
    ms: np.ndarray,
    h: np.ndarray,
    users: np.ndarray,
    cum: np.ndarray,
) -> pl.DataFrame:
    """Pick event names and users for drawn events and build the sorted frame."""
    k = len(a)
    event = np.minimum((rng.random(k, dtype=np.float32)[:, None] > cum[a]).sum(axis=1), 7)
    t = day / pop.days
    # A fading account loses users; an expanding one grows into its seats.
    share = np.clip(h / pop.h0[a], 0.2, 1.0) * (1 + pop.expand[a] * t) / (1 + pop.expand[a])
    pool = np.maximum(1, np.ceil(users[a] * share)).astype(np.int64)
    ts = win.base_us + day.astype(np.int64) * US_PER_DAY + ms.astype(np.int64) * 1000
    user = _users_of(rng, a, ts, pool)
    variant = rng.integers(0, 3, k)
    # Draws arrive grouped by account, so a stable sort on time is deterministic on ties.
    order = np.argsort(ts, kind="stable")
    a, event, user, variant, ts = a[order], event[order], user[order], variant[order], ts[order]
    props = pl.Series(
        [_EVENT_PROPS.get(e, (None, None, None))[v] for e in _EVENTS for v in range(3)],
        dtype=pl.String,
    )
    return pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "user_id": pl.Series(user).cast(pl.String).str.zfill(3),
            "event": pl.Series(_EVENTS, dtype=pl.String).gather(event),
            "ts": pl.Series(ts, dtype=pl.Int64).cast(TS),
            "properties": props.gather(event * 3 + variant),
        }
    ).with_columns(user_id=pl.concat_str(pl.col("account_id"), pl.lit("-U"), pl.col("user_id")))


_POWER_SHARE = 0.15  # the share of events made by each account's few heavy users


def _users_of(
    rng: np.random.Generator, a: np.ndarray, ts: np.ndarray, pool: np.ndarray
) -> np.ndarray:
    """Return the user (1..pool) of each event: most events come from users in turn, each
    seen about once before any is seen twice (so every active user shows up in a month with
    enough events), the rest from a few heavy users.
    """
    order = np.lexsort((ts, a))  # each account's events in time order
    first = np.r_[0, np.flatnonzero(np.diff(a[order])) + 1]
    rank = np.empty(len(a), dtype=np.int64)
    rank[order] = np.arange(len(a)) - np.repeat(first, np.diff(np.r_[first, len(a)]))
    turn = rank % pool
    heavy = np.floor(pool * rng.random(len(a)) ** 3).astype(np.int64)
    user: np.ndarray = np.where(rng.random(len(a)) < _POWER_SHARE, heavy, turn) + 1
    return user
