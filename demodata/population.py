"""The demo's accounts and their latent, time-varying health: the one cause every dataset reads.

Contracts, churn, fades and expansions are drawn here as numpy arrays of per-account values;
the other modules turn them into CRM rows, survey answers and product events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from tasks.config import PlaybookSettings
from tasks.lifecycle import holdout_draw
from tasks.schemas import TS

_TIER_P = (0.10, 0.30, 0.60)
_SEAT_RANGE = ((300, 3000), (50, 300), (5, 50))
_TIER_PRICE_FACTOR = np.array([0.7, 0.85, 1.0])  # volume discounts per seat
_PLAN_PRICE = np.array([300.0, 550.0, 900.0])  # list price per seat and year
_PLAN_P_BY_TIER = np.array([[0.02, 0.28, 0.70], [0.20, 0.60, 0.20], [0.70, 0.25, 0.05]])
SURVEYS = ("nps", "csat", "ces")
US_PER_DAY = 86_400_000_000
_WEEKEND_WEIGHT = 0.25
_CHURN_SHARE = 0.11
_DECAY_SHARE = 0.15
_EXPAND_SHARE = 0.08
_DIP_SHARE = 0.6  # smaller accounts (ARR under 45k) that go through a dip and may come back
# The playbook that works in the demo: a dipping account it is opened for comes back; one in
# its hold-out group (by the default [actions] holdout_key and share) stays down for months.
PLANTED_PLAYBOOK = "Health-check call with the customer"


@dataclass(frozen=True)
class Window:
    """The calendar window, as day offsets from its first day."""

    start: date
    end: date
    days: int
    months: int
    cal_starts: np.ndarray  # day offset of each calendar month's first day, plus one past the end
    labels: tuple[str, ...]  # YYYY-MM per month
    cum_dw: np.ndarray  # cumulative weekday weights, length days + 1
    base_us: int  # epoch microseconds of start 00:00

    def bounds(self, m: int) -> tuple[int, int]:
        """Return the first day and one past the last day of month ``m`` inside the window."""
        return max(int(self.cal_starts[m]), 0), min(int(self.cal_starts[m + 1]), self.days)

    def month_of(self, day: np.ndarray) -> np.ndarray:
        """Return the month index of each day offset."""
        return np.searchsorted(self.cal_starts, day, side="right") - 1

    def quarter_ends(self) -> np.ndarray:
        """Return the day offsets of calendar quarter ends inside the window."""
        lasts = [
            _shift_months(self.start, m + 1) - timedelta(days=1)
            for m in range(self.months)
            if self.labels[m][5:] in ("03", "06", "09", "12")
        ]
        return np.array([(d - self.start).days for d in lasts if d <= self.end], dtype=np.int64)


@dataclass
class Population:
    """Per-account attributes and latent-health trajectories (numpy arrays of length n)."""

    n: int
    days: int  # window length the trajectories were drawn for
    ids: pl.Series
    tier: np.ndarray
    plan: np.ndarray
    seats: np.ndarray
    h0: np.ndarray
    cs_day: np.ndarray  # contract start as a day offset (negative: before the window)
    stop: np.ndarray  # churn day offset, or window length for accounts still active
    churned: np.ndarray
    drop: np.ndarray  # health lost during a fade
    drop_start: np.ndarray
    drop_len: np.ndarray
    rise: np.ndarray  # health gained over the window (expansion accounts)
    expand: np.ndarray  # relative usage and billing growth over the window
    contract: np.ndarray  # fading accounts that also cut seats
    noise: np.ndarray  # month-to-month health noise, shape (n, months)
    arr_base: np.ndarray
    dip: np.ndarray  # health lost in a temporary dip (0: none)
    dip_start: np.ndarray
    dip_len: np.ndarray
    recover_at: np.ndarray  # day offset the dip starts to heal (treated: weeks; held out: months)
    slide: np.ndarray  # health a held-out dipping account loses on top, after the bottom


def demo_window(end: date, months: int) -> Window:
    """Return the window of ``months`` calendar months ending at ``end``."""
    first = _shift_months(date(end.year, end.month, 1), -(months - 1))
    month_firsts = [_shift_months(first, k) for k in range(months)]
    cal = [(d - first).days for d in month_firsts] + [(end - first).days + 1]
    days = cal[-1]
    weekday = (first.weekday() + np.arange(days)) % 7
    weights = np.where(weekday >= 5, _WEEKEND_WEIGHT, 1.0)
    base = datetime(first.year, first.month, first.day) - datetime(1970, 1, 1)
    return Window(
        start=first,
        end=end,
        days=days,
        months=months,
        cal_starts=np.array(cal, dtype=np.int64),
        labels=tuple(d.strftime("%Y-%m") for d in month_firsts),
        cum_dw=np.concatenate([[0.0], np.cumsum(weights)]),
        base_us=base // timedelta(microseconds=1),
    )


def _shift_months(d: date, k: int) -> date:
    """Return the first-of-month date ``k`` months after the first-of-month date ``d``."""
    total = d.year * 12 + d.month - 1 + k
    return date(total // 12, total % 12 + 1, 1)


def population(rng: np.random.Generator, n: int, win: Window) -> Population:
    """Draw accounts, their contracts, churn and health trajectories."""
    tier = rng.choice(3, size=n, p=_TIER_P)
    lo, hi = np.array(_SEAT_RANGE, dtype=float)[tier].T
    seats = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi)))).astype(np.int64)
    plan = choice_rows(rng, _PLAN_P_BY_TIER[tier])
    h0 = np.clip(rng.beta(4.0, 2.0, n) + 0.03 * (tier == 0), 0.05, 0.97)
    cs_day = _contract_days(rng, n, win)
    churned, stop = _churn(rng, h0, tier, cs_day, win)
    price = _PLAN_PRICE[plan] * _TIER_PRICE_FACTOR[tier] * rng.lognormal(0.0, 0.15, n)
    pop = Population(
        n=n,
        days=win.days,
        ids=_account_ids(n),
        tier=tier,
        plan=plan,
        seats=seats,
        h0=h0,
        cs_day=cs_day,
        stop=stop,
        churned=churned,
        drop=np.zeros(n),
        drop_start=np.full(n, float(win.days)),
        drop_len=np.ones(n),
        rise=np.zeros(n),
        expand=np.zeros(n),
        contract=np.zeros(n, dtype=bool),
        noise=rng.normal(0.0, 0.03, (n, win.months)),
        arr_base=np.round(seats * price, -1),
        dip=np.zeros(n),
        dip_start=np.full(n, float(win.days)),
        dip_len=np.ones(n),
        recover_at=np.full(n, float(win.days)),
        slide=np.zeros(n),
    )
    _plant_trajectories(rng, pop, win)
    return pop


def _account_ids(n: int) -> pl.Series:
    """Return ids A00001, A00002, ... (wider when n needs it)."""
    width = max(5, len(str(n)))
    return pl.select(
        pl.lit("A") + pl.int_range(1, n + 1, eager=False).cast(pl.String).str.zfill(width)
    ).to_series()


def choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category index per row of a (rows, k) probability matrix."""
    u = rng.random(len(probs))[:, None]
    index: np.ndarray = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)
    return index


def _contract_days(rng: np.random.Generator, n: int, win: Window) -> np.ndarray:
    """Draw contract starts: most over the ~3 years before the window, some inside it."""
    new = rng.random(n) < 0.2
    before = rng.integers(min(-365, win.days - 3 * 365 - 182), 0, n)
    inside = rng.integers(0, max(win.days - 30, 1), n)
    days = np.where(new, inside, before)
    # Avoid 29 February so that anniversaries always exist.
    d = np.datetime64(win.start) + days
    leap = (d.astype("M8[M]").astype(int) % 12 == 1) & ((d - d.astype("M8[M]")).astype(int) == 28)
    starts: np.ndarray = days - leap.astype(np.int64)
    return starts


def _churn(
    rng: np.random.Generator, h0: np.ndarray, tier: np.ndarray, cs_day: np.ndarray, win: Window
) -> tuple[np.ndarray, np.ndarray]:
    """Decide who churns inside the window and when (mostly at a renewal)."""
    n = len(h0)
    first = np.maximum(30, cs_day + 90)  # churn needs some history first
    eligible = first < win.days - 1
    logit = 7.0 * (0.55 - h0) - np.array([0.8, 0.3, 0.0])[tier] + rng.normal(0.0, 0.7, n)
    p = _calibrated_sigmoid(logit, eligible, _CHURN_SHARE * n)
    churned = rng.random(n) < p
    anniv = anniversary_on_or_after(win, cs_day, first)
    at_renewal = (anniv < win.days) & (rng.random(n) < 0.7)
    anytime = first + np.floor(rng.random(n) * np.maximum(win.days - first, 1)).astype(np.int64)
    day = np.where(at_renewal, anniv, anytime)
    return churned, np.where(churned, day, win.days)


def _calibrated_sigmoid(logit: np.ndarray, mask: np.ndarray, target: float) -> np.ndarray:
    """Return sigmoid(alpha + logit) on ``mask`` with alpha set so the sum is ``target``."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (_sigmoid(mid + logit) * mask).sum() < target:
            lo = mid
        else:
            hi = mid
    p: np.ndarray = _sigmoid(lo + logit) * mask
    return p


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Return the logistic function of ``x``."""
    y: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return y


def anniversary_on_or_after(win: Window, cs_day: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Return the first contract anniversary (day offset) on or after ``day``."""
    start = np.datetime64(win.start, "D")
    cs = start + cs_day
    years = np.maximum(
        (start + day).astype("M8[Y]").astype(int) - cs.astype("M8[Y]").astype(int), 1
    )
    anniv = _add_years(cs, years)
    anniv = np.where(anniv < start + day, _add_years(cs, years + 1), anniv)
    return (anniv - start).astype(np.int64)


def _add_years(d: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Add whole years to datetime64[D] values that are never 29 February."""
    y = d.astype("M8[Y]")
    month = d.astype("M8[M]") - y.astype("M8[M]")
    dom = d - d.astype("M8[M]").astype("M8[D]")
    shifted: np.ndarray = ((y + years).astype("M8[M]") + month).astype("M8[D]") + dom
    return shifted


def _plant_trajectories(rng: np.random.Generator, pop: Population, win: Window) -> None:
    """Plant fades before churn, recent usage decay and expansion into the health paths."""
    n, u = pop.n, rng.random((8, pop.n))
    fade = pop.churned
    surprise = u[0] < 0.15  # churn without warning keeps the back-test honest
    pop.drop_len[fade] = (45 + 105 * u[1])[fade]
    # The fade bottoms out up to a month before the customer formally leaves.
    pop.drop_start[fade] = (pop.stop - pop.drop_len - 30 * u[5])[fade]
    pop.drop[fade] = np.where(surprise, 0.08 * u[2], 0.3 + 0.3 * u[2])[fade]
    cand = ~pop.churned & (pop.cs_day < win.days - 150)
    tilt = (1.4 - pop.h0) * cand
    decay = u[3] < _DECAY_SHARE * n * tilt / max(tilt.sum(), 1e-9)
    pop.drop_len[decay] = (45 + 75 * u[4])[decay]
    pop.drop_start[decay] = (win.days - 60 - 60 * u[5])[decay]
    pop.drop[decay] = (0.25 + 0.25 * u[2])[decay]
    cand = ~pop.churned & ~decay & (pop.h0 > 0.6)
    grow = u[6] < _EXPAND_SHARE * n / max(cand.sum(), 1) * cand
    pop.rise[grow] = (0.1 + 0.15 * u[7])[grow]
    pop.expand[grow] = (0.4 + 0.6 * u[4])[grow]
    pop.contract = (fade | decay) & (u[7] < 0.4)
    _plant_dips(rng, pop, win, ~pop.churned & ~decay & ~grow)


def _plant_dips(rng: np.random.Generator, pop: Population, win: Window, cand: np.ndarray) -> None:
    """Plant temporary dips; the planted playbook's treated accounts recover within weeks.

    Treated means not in the playbook's hold-out group, as the pipeline draws it (the same
    keyed hash), so the demo's effectiveness.json shows the effect for that playbook only.
    """
    u = rng.random((5, pop.n))
    start = win.days - 380 + 250 * u[1]  # early enough for a 90-day outcome before the end
    small = cand & (pop.arr_base < 45_000)
    dip = small & (u[0] < _DIP_SHARE) & (start > pop.cs_day + 90)
    s = PlaybookSettings()
    ids = pop.ids.to_list()
    held = np.array(
        [holdout_draw(s.holdout_key, i, PLANTED_PLAYBOOK) < s.holdout_share for i in ids]
    )
    pop.dip[dip] = (0.45 + 0.15 * u[2])[dip]
    pop.dip_start[dip] = start[dip]
    pop.dip_len[dip] = (35 + 21 * u[3])[dip]
    bottom = pop.dip_start + pop.dip_len
    # both groups look the same until two weeks after the bottom, when the action is open
    pop.recover_at[dip] = np.where(held, bottom + 120 + 60 * u[4], bottom + 14 + 14 * u[4])[dip]
    # without the call (only after the bottom, when the action opens) it keeps sliding
    pop.slide[dip & held] = 0.2


def health_at(pop: Population, a: np.ndarray, t: np.ndarray, m: np.ndarray | int) -> np.ndarray:
    """Return the latent health (0-1) of accounts ``a`` at day offsets ``t``."""
    fade = pop.drop[a] * np.clip((t - pop.drop_start[a]) / pop.drop_len[a], 0.0, 1.0)
    # a dip heals over three weeks from recover_at
    down = np.clip((t - pop.dip_start[a]) / pop.dip_len[a], 0.0, 1.0)
    heal = np.clip((t - pop.recover_at[a]) / 21.0, 0.0, 1.0)
    after = np.clip((t - pop.dip_start[a] - pop.dip_len[a] - 14.0) / 35.0, 0.0, 1.0)
    fade = fade + pop.dip[a] * (down - heal) + pop.slide[a] * after * (1.0 - heal)
    health: np.ndarray = np.clip(
        pop.h0[a] + pop.noise[a, m] - fade + pop.rise[a] * t / pop.days, 0.02, 0.98
    )
    return health


def intensity(pop: Population, a: np.ndarray, t: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Return relative product usage from health, onboarding ramp-up and expansion."""
    ramp = np.clip(0.3 + 0.7 * (t - pop.cs_day[a]) / 60.0, 0.3, 1.0)
    usage: np.ndarray = h**1.5 * ramp * (1.0 + pop.expand[a] * t / pop.days)
    return usage


def billing_factor(pop: Population, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return the ARR multiplier at day ``t``: quarterly seat add-ons or a seat cut."""
    quarters = np.floor(np.maximum(t, 0) / 91.0) * 91.0 / pop.days
    cut = pop.contract[a] & (t >= pop.drop_start[a] + pop.drop_len[a] / 2)
    factor: np.ndarray = (1.0 + 0.5 * pop.expand[a] * quarters) * np.where(cut, 0.75, 1.0)
    return factor


def month_span(pop: Population, win: Window, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each account's active days [lo, hi) inside month ``m``."""
    first, last = win.bounds(m)
    lo = np.clip(pop.cs_day, first, last)
    hi = np.clip(pop.stop, first, last)
    return lo, np.maximum(hi, lo)


def place(rng: np.random.Generator, win: Window, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Draw one weekday-weighted day in [lo, hi) per row."""
    v = win.cum_dw[lo] + rng.random(len(lo)) * (win.cum_dw[hi] - win.cum_dw[lo])
    day = np.searchsorted(win.cum_dw, v, side="right") - 1
    placed: np.ndarray = np.clip(day, lo, hi - 1)
    return placed


def day_clock(rng: np.random.Generator, k: int, centre_h: float, sd_h: float) -> np.ndarray:
    """Draw seconds after midnight: office hours, with some activity at any time."""
    hours = np.where(rng.random(k) < 0.1, rng.uniform(0, 24, k), rng.normal(centre_h, sd_h, k))
    return np.floor(np.clip(hours, 0.0, 23.9997) * 3600.0)


def to_ts(win: Window, day: np.ndarray, seconds: np.ndarray) -> pl.Series:
    """Return naive microsecond datetimes for day offsets plus seconds."""
    us = win.base_us + day.astype(np.int64) * US_PER_DAY + (seconds * 1e6).astype(np.int64)
    return pl.Series(us, dtype=pl.Int64).cast(TS)


def sample_points(
    rng: np.random.Generator,
    pop: Population,
    win: Window,
    weight: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    total: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw about ``total`` (account, day) points; ``weight(a, t, m)`` sets relative rates."""
    every = np.arange(pop.n)
    spans = [month_span(pop, win, m) for m in range(win.months)]
    rates = [
        weight(every, (lo + hi) / 2, m) * (win.cum_dw[hi] - win.cum_dw[lo])
        for m, (lo, hi) in enumerate(spans)
    ]
    scale = total / max(sum(float(r.sum()) for r in rates), 1e-12)
    accs, days = [], []
    for (lo, hi), rate in zip(spans, rates, strict=True):
        a = np.repeat(every, rng.poisson(rate * scale))
        accs.append(a)
        days.append(place(rng, win, lo[a], hi[a]))
    return np.concatenate(accs), np.concatenate(days)


def account_years(pop: Population) -> float:
    """Return the total time accounts were customers inside the window, in years."""
    return float(np.maximum(pop.stop - np.maximum(pop.cs_day, 0), 0).sum()) / 365.25


def make_ids(prefix: str, k: int) -> pl.Series:
    """Return ``k`` sequential ids like O0000001."""
    width = max(7, len(str(k)))
    return pl.select(
        pl.lit(prefix) + pl.int_range(1, k + 1, eager=False).cast(pl.String).str.zfill(width)
    ).to_series()
