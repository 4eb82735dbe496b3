"""Generate seeded, realistic sample data for ``chs demo``.

The data follow from a latent, time-varying health per account: usage, tickets, surveys,
orders and outcomes all read it, and churn follows it with noise, so scores, trends and a
churn back-test on the demo mean something. Everything is vectorised with numpy; the only
Python loops run over months, event names or word lists.

Files written into ``out_dir``::

    crm.duckdb                       tables accounts (+ custom column plan), orders, tickets
    surveys/{nps,csat,ces}.csv       survey-tool exports with their own (non-canonical) headers
    analytics/events-YYYY-MM.parquet product events, one file per calendar month, sorted by ts
    outcomes.jsonl                   quarterly goal measurements for about 60% of accounts

The window is ``months`` calendar months, the last one being the month of ``end``, which is
cut at ``end`` 23:59:59.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from tasks.schemas import ACCOUNTS, ORDERS, SURVEY_RESPONSES, TICKETS, TS

# --- vocabularies -------------------------------------------------------------------------

_TIERS = ("enterprise", "mid-market", "smb")
_TIER_P = (0.10, 0.30, 0.60)
_SEAT_RANGE = ((300, 3000), (50, 300), (5, 50))
_TIER_PRICE_FACTOR = np.array([0.7, 0.85, 1.0])  # volume discounts per seat
_PLANS = ("starter", "growth", "scale")
_PLAN_PRICE = np.array([300.0, 550.0, 900.0])  # list price per seat and year
_PLAN_P_BY_TIER = np.array([[0.02, 0.28, 0.70], [0.20, 0.60, 0.20], [0.70, 0.25, 0.05]])
_INDUSTRIES = (
    "software",
    "e-commerce",
    "banking",
    "healthcare",
    "manufacturing",
    "education",
    "logistics",
    "media",
)
_INDUSTRY_P = (0.22, 0.18, 0.10, 0.14, 0.12, 0.08, 0.09, 0.07)
_REGIONS = ("EMEA", "NA", "APAC", "LATAM")
_REGION_P = (0.35, 0.40, 0.15, 0.10)
_CSMS = tuple(
    f"{n}@example.com"
    for n in (
        "maria.lopez",
        "james.carter",
        "aisha.khan",
        "lukas.schmidt",
        "chen.wei",
        "sofia.rossi",
        "david.okafor",
        "emma.johansson",
        "raj.patel",
        "lucia.fernandez",
        "tom.nguyen",
        "hannah.mueller",
    )
)
_NAME_FIRST = (
    "Northwind", "Blue Ridge", "Summit", "Acme", "Bright", "Silverline", "Evergreen", "Harbor",
    "Redwood", "Keystone", "Atlas", "Pioneer", "Crescent", "Granite", "Lakeside", "Orion",
    "Vertex", "Maple", "Riverbend", "Sunrise", "Ironclad", "Nakamura", "Keller", "Fischer",
    "Novak", "Rossi", "Silva", "Okafor", "Lindgren", "Haddad", "Zürich", "Montréal", "Köln",
    "Malmö", "Bogotá",
)  # fmt: skip
_NAME_SECOND = (
    "Analytics", "Logistics", "Health", "Foods", "Capital", "Systems", "Dental", "Retail",
    "Media", "Labs", "Bank", "Clinic", "Software", "Outfitters", "Insurance", "Robotics",
    "Energy", "Travel", "Consulting", "Manufacturing",
)  # fmt: skip
# Blank suffixes make a name like "Summit Labs" as common as a legal form.
_NAME_SUFFIX = (
    "Inc.", "LLC", "Ltd", "GmbH", "S.A.", "Group", "AG", "Pty Ltd", "SAS", "Co.", "", "", "",
)  # fmt: skip
# Names that exercise escaping and encodings downstream (HTML, CSV, e-mail headers).
_SPECIAL_NAMES = (
    "Müller & Söhne GmbH", "O'Brien Analytics", "Björk & Lindqvist AB", "Café Lumière SAS",
    "D'Angelo Foods LLC", "Søren's Bakery ApS", "São Paulo Fintech Ltda.",
    "Dvořák Logistics s.r.o.", "Ngô & Partners", "Ångström Labs AB", "Peña Health S.L.",
    "Smith & Jones Dental", "L'Atelier Numérique SARL", "Łukasiewicz Bank S.A.",
)  # fmt: skip

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

_PRIORITIES = ("low", "normal", "high", "urgent")
_RESOLUTION_MEDIAN_H = np.array([60.0, 36.0, 20.0, 8.0])  # by priority

_SURVEYS = ("nps", "csat", "ces")
_SURVEY_P = (0.5, 0.3, 0.2)
_SURVEY_HEADERS = {
    "response_id": "Response ID",
    "account_id": "Account",
    "survey": "Survey Type",
    "score": "Score",
    "submitted_at": "Submitted",
    "respondent_id": "Respondent",
    "comment": "Comment",
}
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

_US_PER_DAY = 86_400_000_000
_WEEKEND_WEIGHT = 0.25
_CHURN_SHARE = 0.11
_DECAY_SHARE = 0.15
_EXPAND_SHARE = 0.08


# --- window and population ----------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
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
class _Population:
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


def _window(end: date, months: int) -> _Window:
    """Return the window of ``months`` calendar months ending at ``end``."""
    first = _shift_months(date(end.year, end.month, 1), -(months - 1))
    month_firsts = [_shift_months(first, k) for k in range(months)]
    cal = [(d - first).days for d in month_firsts] + [(end - first).days + 1]
    days = cal[-1]
    weekday = (first.weekday() + np.arange(days)) % 7
    weights = np.where(weekday >= 5, _WEEKEND_WEIGHT, 1.0)
    base = datetime(first.year, first.month, first.day) - datetime(1970, 1, 1)
    return _Window(
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


def _population(rng: np.random.Generator, n: int, win: _Window) -> _Population:
    """Draw accounts, their contracts, churn and health trajectories."""
    tier = rng.choice(3, size=n, p=_TIER_P)
    lo, hi = np.array(_SEAT_RANGE, dtype=float)[tier].T
    seats = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi)))).astype(np.int64)
    plan = _choice_rows(rng, _PLAN_P_BY_TIER[tier])
    h0 = np.clip(rng.beta(4.0, 2.0, n) + 0.03 * (tier == 0), 0.05, 0.97)
    cs_day = _contract_days(rng, n, win)
    churned, stop = _churn(rng, h0, tier, cs_day, win)
    price = _PLAN_PRICE[plan] * _TIER_PRICE_FACTOR[tier] * rng.lognormal(0.0, 0.15, n)
    pop = _Population(
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
    )
    _plant_trajectories(rng, pop, win)
    return pop


def _account_ids(n: int) -> pl.Series:
    """Return ids A00001, A00002, ... (wider when n needs it)."""
    width = max(5, len(str(n)))
    return pl.select(
        pl.lit("A") + pl.int_range(1, n + 1, eager=False).cast(pl.String).str.zfill(width)
    ).to_series()


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category index per row of a (rows, k) probability matrix."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


def _contract_days(rng: np.random.Generator, n: int, win: _Window) -> np.ndarray:
    """Draw contract starts: most over the ~3 years before the window, some inside it."""
    new = rng.random(n) < 0.2
    before = rng.integers(min(-365, win.days - 3 * 365 - 182), 0, n)
    inside = rng.integers(0, max(win.days - 30, 1), n)
    days = np.where(new, inside, before)
    # Avoid 29 February so that anniversaries always exist.
    d = np.datetime64(win.start) + days
    leap = (d.astype("M8[M]").astype(int) % 12 == 1) & ((d - d.astype("M8[M]")).astype(int) == 28)
    return days - leap.astype(np.int64)


def _churn(
    rng: np.random.Generator, h0: np.ndarray, tier: np.ndarray, cs_day: np.ndarray, win: _Window
) -> tuple[np.ndarray, np.ndarray]:
    """Decide who churns inside the window and when (mostly at a renewal)."""
    n = len(h0)
    first = np.maximum(30, cs_day + 90)  # churn needs some history first
    eligible = first < win.days - 1
    logit = 7.0 * (0.55 - h0) - np.array([0.8, 0.3, 0.0])[tier] + rng.normal(0.0, 0.7, n)
    p = _calibrated_sigmoid(logit, eligible, _CHURN_SHARE * n)
    churned = rng.random(n) < p
    anniv = _anniversary_on_or_after(win, cs_day, first)
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
    return _sigmoid(lo + logit) * mask


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Return the logistic function of ``x``."""
    return 1.0 / (1.0 + np.exp(-x))


def _anniversary_on_or_after(win: _Window, cs_day: np.ndarray, day: np.ndarray) -> np.ndarray:
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
    return ((y + years).astype("M8[M]") + month).astype("M8[D]") + dom


def _plant_trajectories(rng: np.random.Generator, pop: _Population, win: _Window) -> None:
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


# --- shared helpers -----------------------------------------------------------------------


def _health(pop: _Population, a: np.ndarray, t: np.ndarray, m: np.ndarray | int) -> np.ndarray:
    """Return the latent health (0-1) of accounts ``a`` at day offsets ``t``."""
    fade = pop.drop[a] * np.clip((t - pop.drop_start[a]) / pop.drop_len[a], 0.0, 1.0)
    return np.clip(pop.h0[a] + pop.noise[a, m] - fade + pop.rise[a] * t / pop.days, 0.02, 0.98)


def _intensity(pop: _Population, a: np.ndarray, t: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Return relative product usage from health, onboarding ramp-up and expansion."""
    ramp = np.clip(0.3 + 0.7 * (t - pop.cs_day[a]) / 60.0, 0.3, 1.0)
    return h**1.5 * ramp * (1.0 + pop.expand[a] * t / pop.days)


def _billing_factor(pop: _Population, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return the ARR multiplier at day ``t``: quarterly seat add-ons or a seat cut."""
    quarters = np.floor(np.maximum(t, 0) / 91.0) * 91.0 / pop.days
    cut = pop.contract[a] & (t >= pop.drop_start[a] + pop.drop_len[a] / 2)
    return (1.0 + 0.5 * pop.expand[a] * quarters) * np.where(cut, 0.75, 1.0)


def _month_span(pop: _Population, win: _Window, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each account's active days [lo, hi) inside month ``m``."""
    first, last = win.bounds(m)
    lo = np.clip(pop.cs_day, first, last)
    hi = np.clip(pop.stop, first, last)
    return lo, np.maximum(hi, lo)


def _place(rng: np.random.Generator, win: _Window, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Draw one weekday-weighted day in [lo, hi) per row."""
    v = win.cum_dw[lo] + rng.random(len(lo)) * (win.cum_dw[hi] - win.cum_dw[lo])
    day = np.searchsorted(win.cum_dw, v, side="right") - 1
    return np.clip(day, lo, hi - 1)


def _clock(rng: np.random.Generator, k: int, centre_h: float, sd_h: float) -> np.ndarray:
    """Draw seconds after midnight: office hours, with some activity at any time."""
    hours = np.where(rng.random(k) < 0.1, rng.uniform(0, 24, k), rng.normal(centre_h, sd_h, k))
    return np.floor(np.clip(hours, 0.0, 23.9997) * 3600.0)


def _to_ts(win: _Window, day: np.ndarray, seconds: np.ndarray) -> pl.Series:
    """Return naive microsecond datetimes for day offsets plus seconds."""
    us = win.base_us + day.astype(np.int64) * _US_PER_DAY + (seconds * 1e6).astype(np.int64)
    return pl.Series(us, dtype=pl.Int64).cast(TS)


def _sample_points(
    rng: np.random.Generator,
    pop: _Population,
    win: _Window,
    weight: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    total: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw about ``total`` (account, day) points; ``weight(a, t, m)`` sets relative rates."""
    every = np.arange(pop.n)
    spans = [_month_span(pop, win, m) for m in range(win.months)]
    rates = [
        weight(every, (lo + hi) / 2, m) * (win.cum_dw[hi] - win.cum_dw[lo])
        for m, (lo, hi) in enumerate(spans)
    ]
    scale = total / max(sum(float(r.sum()) for r in rates), 1e-12)
    accs, days = [], []
    for (lo, hi), rate in zip(spans, rates, strict=True):
        a = np.repeat(every, rng.poisson(rate * scale))
        accs.append(a)
        days.append(_place(rng, win, lo[a], hi[a]))
    return np.concatenate(accs), np.concatenate(days)


def _account_years(pop: _Population) -> float:
    """Return the total time accounts were customers inside the window, in years."""
    return float(np.maximum(pop.stop - np.maximum(pop.cs_day, 0), 0).sum()) / 365.25


def _ids(prefix: str, k: int) -> pl.Series:
    """Return ``k`` sequential ids like O0000001."""
    width = max(7, len(str(k)))
    return pl.select(
        pl.lit(prefix) + pl.int_range(1, k + 1, eager=False).cast(pl.String).str.zfill(width)
    ).to_series()


# --- accounts -----------------------------------------------------------------------------


def _accounts_frame(rng: np.random.Generator, pop: _Population, win: _Window) -> pl.DataFrame:
    """Return the CRM accounts table (canonical columns plus ``plan``)."""
    n, start = pop.n, np.datetime64(win.start, "D")
    csm = rng.integers(0, len(_CSMS), n)
    last = np.minimum(pop.stop, win.days) - 1
    arr = np.round(pop.arr_base * _billing_factor(pop, np.arange(n), last.astype(float)), 2)
    renew_from = np.where(pop.churned, pop.stop, win.days)
    frame = pl.DataFrame(
        {
            "account_id": pop.ids,
            "name": _company_names(rng, n),
            "csm_email": pl.Series(_CSMS).gather(csm),
            "tier": pl.Series(_TIERS).gather(pop.tier),
            "industry": pl.Series(_INDUSTRIES).gather(rng.choice(8, n, p=_INDUSTRY_P)),
            "region": pl.Series(_REGIONS).gather(rng.choice(4, n, p=_REGION_P)),
            "seats": pop.seats,
            "arr": arr,
            "contract_start": start + pop.cs_day,
            "renewal_date": start + _anniversary_on_or_after(win, pop.cs_day, renew_from),
            "status": np.where(pop.churned, "churned", "active"),
            "churned_at": start + pop.stop,
            "plan": pl.Series(_PLANS).gather(pop.plan),
        }
    )
    no_csm = pl.Series(rng.random(n) < 0.03)
    return frame.with_columns(
        csm_email=pl.when(no_csm).then(None).otherwise(pl.col("csm_email")),
        churned_at=pl.when(pl.col("status") == "churned").then(pl.col("churned_at")),
    ).cast(ACCOUNTS.schema)


def _company_names(rng: np.random.Generator, n: int) -> pl.Series:
    """Return plausible company names, a handful with '&', apostrophes or accents."""
    parts = [
        pl.Series(words).gather(rng.integers(0, len(words), n))
        for words in (_NAME_FIRST, _NAME_SECOND, _NAME_SUFFIX)
    ]
    names = pl.select(pl.concat_str(parts, separator=" ").str.strip_chars()).to_series()
    # Every special name appears at least once (when n allows), in list order.
    k = min(n, max(len(_SPECIAL_NAMES), round(0.015 * n)))
    special = pl.Series(_SPECIAL_NAMES).gather(np.arange(k) % len(_SPECIAL_NAMES))
    return names.scatter(rng.choice(n, k, replace=False), special).alias("name")


# --- orders -------------------------------------------------------------------------------


def _orders_frame(rng: np.random.Generator, pop: _Population, win: _Window) -> pl.DataFrame:
    """Return monthly subscription invoices, occasional add-ons and ~2% refunds."""
    inv_a, inv_d = _invoice_days(pop, win)
    amount = pop.arr_base[inv_a] * _billing_factor(pop, inv_a, inv_d.astype(float)) / 12.0
    inv_s = rng.uniform(2 * 3600, 6 * 3600, len(inv_a)).round()  # the nightly billing run

    def addon_weight(a: np.ndarray, t: np.ndarray, m: int) -> np.ndarray:
        return _health(pop, a, t, m) * (1.0 + 4.0 * (pop.expand[a] > 0))

    add_a, add_d = _sample_points(rng, pop, win, addon_weight, 0.6 * _account_years(pop))
    add_amount = pop.arr_base[add_a] / 12.0 * rng.uniform(0.2, 1.0, len(add_a))
    add_amount *= _billing_factor(pop, add_a, add_d.astype(float))
    a = np.concatenate([inv_a, add_a])
    d = np.concatenate([inv_d, add_d])
    s = np.concatenate([inv_s, _clock(rng, len(add_a), 14.0, 2.5)])
    amt = np.round(np.concatenate([amount, add_amount]), 2)
    ref_a, ref_d, ref_s, ref_amt = _refunds(rng, pop, win, a, d, amt)
    kind = np.repeat(np.array(["order", "refund"]), [len(a), len(ref_a)])
    return _finish(
        pl.DataFrame(
            {
                "account_id": pop.ids.gather(np.concatenate([a, ref_a])),
                "ordered_at": _to_ts(win, np.concatenate([d, ref_d]), np.concatenate([s, ref_s])),
                "amount": np.concatenate([amt, ref_amt]),
                "currency": "USD",
                "kind": kind,
            }
        ),
        "ordered_at",
        "order_id",
        "O",
        ORDERS.schema,
    )


def _invoice_days(pop: _Population, win: _Window) -> tuple[np.ndarray, np.ndarray]:
    """Return (account, day) of each monthly invoice, on the contract's day of month."""
    start = np.datetime64(win.start, "D")
    cs = start + pop.cs_day
    dom = np.minimum((cs - cs.astype("M8[M]").astype("M8[D]")).astype(np.int64), 27)
    accs, days = [], []
    for m in range(win.months):
        day = win.cal_starts[m] + dom
        ok = (day >= np.maximum(pop.cs_day, 0)) & (day < pop.stop) & (day < win.days)
        accs.append(np.flatnonzero(ok))
        days.append(day[ok])
    return np.concatenate(accs), np.concatenate(days)


def _refunds(
    rng: np.random.Generator,
    pop: _Population,
    win: _Window,
    a: np.ndarray,
    d: np.ndarray,
    amount: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Refund part of about 2% of orders a few days later, while the account is a customer."""
    pick = rng.random(len(a)) < 0.021
    day = d[pick] + rng.integers(1, 22, int(pick.sum()))
    keep = (day < pop.stop[a[pick]]) & (day < win.days)
    k = int(keep.sum())
    share = rng.uniform(0.1, 1.0, k)
    return (
        a[pick][keep],
        day[keep],
        _clock(rng, k, 11.0, 2.0),
        np.round(amount[pick][keep] * share, 2),
    )


def _finish(
    frame: pl.DataFrame, ts_col: str, id_col: str, prefix: str, schema: pl.Schema
) -> pl.DataFrame:
    """Sort by time, number the rows with an id column and cast to the canonical schema."""
    frame = frame.sort([ts_col, "account_id"], maintain_order=True)
    frame = frame.with_columns(_ids(prefix, frame.height).alias(id_col))
    return frame.select(schema.names()).cast(schema)


# --- tickets ------------------------------------------------------------------------------


def _tickets_frame(rng: np.random.Generator, pop: _Population, win: _Window) -> pl.DataFrame:
    """Return helpdesk tickets: more and more urgent for unhealthy accounts, plus spikes."""
    size = pop.seats.astype(float) ** 0.3

    def weight(a: np.ndarray, t: np.ndarray, m: int) -> np.ndarray:
        return size[a] * (0.4 + 2.0 * (1.0 - _health(pop, a, t, m)))

    a, d = _sample_points(rng, pop, win, weight, 5.0 * _account_years(pop))
    s = _clock(rng, len(a), 11.5, 3.0)
    h = _health(pop, a, d + s / 86400.0, win.month_of(d))
    prio = _choice_rows(rng, _priority_probs(h))
    spike_a, spike_d = _spikes(rng, pop, win)
    a, d = np.concatenate([a, spike_a]), np.concatenate([d, spike_d])
    s = np.concatenate([s, _clock(rng, len(spike_a), 11.5, 3.0)])
    h = np.concatenate([h, _health(pop, spike_a, spike_d.astype(float), win.month_of(spike_d))])
    prio = np.concatenate([prio, rng.integers(2, 4, len(spike_a))])
    slow = np.concatenate([np.ones(len(h) - len(spike_a)), np.full(len(spike_a), 8.0)])
    return _ticket_rows(rng, pop, win, a, d, s, h, prio, slow)


def _priority_probs(h: np.ndarray) -> np.ndarray:
    """Return (k, 4) probabilities of low/normal/high/urgent given health."""
    low, high, urgent = 0.30 * h, 0.10 + 0.15 * (1 - h), 0.02 + 0.10 * (1 - h)
    return np.column_stack([low, 1.0 - low - high - urgent, high, urgent])


def _spikes(
    rng: np.random.Generator, pop: _Population, win: _Window
) -> tuple[np.ndarray, np.ndarray]:
    """Plant bursts of high/urgent tickets in the last weeks for about 5% of accounts."""
    first = np.maximum(win.days - rng.integers(7, 29, pop.n), np.maximum(pop.cs_day, 0))
    on = (rng.random(pop.n) < 0.05) & (first < pop.stop)
    a = np.repeat(np.arange(pop.n), np.where(on, 2 + rng.poisson(4.0, pop.n), 0))
    return a, _place(rng, win, first[a], pop.stop[a])


def _ticket_rows(
    rng: np.random.Generator,
    pop: _Population,
    win: _Window,
    a: np.ndarray,
    d: np.ndarray,
    s: np.ndarray,
    h: np.ndarray,
    prio: np.ndarray,
    slow: np.ndarray,
) -> pl.DataFrame:
    """Add resolution times, status and satisfaction to opened tickets."""
    k = len(a)
    hours = _RESOLUTION_MEDIAN_H[prio] * (1.6 - h) * slow * rng.lognormal(0.0, 0.9, k)
    opened = win.base_us + d * _US_PER_DAY + (s * 1e6).astype(np.int64)
    resolved = opened + np.maximum(np.round(hours * 3600.0), 60).astype(np.int64) * 1_000_000
    churn_us = win.base_us + pop.stop[a] * _US_PER_DAY
    # Offboarding closes whatever is still open when a customer leaves (clock stops at 23:59:58).
    closed = np.maximum((opened + churn_us) // 2_000_000 * 1_000_000, opened + 1_000_000)
    resolved = np.where(pop.churned[a] & (resolved >= churn_us), closed, resolved)
    end_us = win.base_us + win.days * _US_PER_DAY
    is_open = (resolved >= end_us) | (rng.random(k) < 0.01 * ~pop.churned[a])
    rated = ~is_open & (rng.random(k) < 0.5)
    sat = 1.8 + 3.6 * h - 0.35 * np.log1p(hours / 24.0) + rng.normal(0.0, 0.7, k)
    frame = pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "opened_at": pl.Series(opened).cast(TS),
            "resolved_at": pl.Series(np.where(is_open, 0, resolved)).cast(TS),
            "priority": pl.Series(_PRIORITIES).gather(prio),
            "status": np.where(is_open, "open", "resolved"),
            "satisfaction": np.clip(np.round(sat), 1, 5),
        }
    ).with_columns(
        resolved_at=pl.when(pl.Series(~is_open)).then(pl.col("resolved_at")),
        satisfaction=pl.when(pl.Series(rated)).then(pl.col("satisfaction")),
    )
    return _finish(frame, "opened_at", "ticket_id", "T", TICKETS.schema)


# --- surveys ------------------------------------------------------------------------------


def _surveys_frame(rng: np.random.Generator, pop: _Population, win: _Window) -> pl.DataFrame:
    """Return NPS/CSAT/CES responses in canonical columns, scores following health."""
    n = pop.n
    part = np.where(rng.random(n) < 0.15, 0.0, rng.lognormal(0.0, 0.5, n))
    cluster = (rng.random(n) < 0.05) & (pop.expand == 0)  # detractor clusters
    recent = win.days - 120

    def weight(a: np.ndarray, t: np.ndarray, m: int) -> np.ndarray:
        boost = np.where(cluster[a] & (t >= recent), 3.0, 1.0)
        return part[a] * (0.4 + _health(pop, a, t, m)) * boost

    a, d = _sample_points(rng, pop, win, weight, 2.0 * _account_years(pop))
    s = _clock(rng, len(a), 14.0, 3.5)
    h = _health(pop, a, d + s / 86400.0, win.month_of(d))
    h = h - 0.3 * (cluster[a] & (d >= recent))
    kind = rng.choice(3, len(a), p=_SURVEY_P)
    score = _survey_scores(rng, kind, h)
    pool = np.minimum(pop.seats[a], 6)
    who = np.floor(pool * rng.random(len(a)) ** 1.5).astype(np.int64) + 1
    frame = pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "survey": pl.Series(_SURVEYS).gather(kind),
            "score": score,
            "submitted_at": _to_ts(win, d, s),
            "who": who,
            "comment": _comments(rng, kind, score),
        }
    ).with_columns(
        respondent_id=pl.concat_str(
            pl.col("account_id"), pl.lit("-U"), pl.col("who").cast(pl.String).str.zfill(3)
        )
    )
    return _finish(frame, "submitted_at", "response_id", "R", SURVEY_RESPONSES.schema)


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


# --- outcomes -----------------------------------------------------------------------------


def _outcomes_frame(rng: np.random.Generator, pop: _Population, win: _Window) -> pl.DataFrame:
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
    h = _health(pop, a, day.astype(float), win.month_of(day))
    ratio = np.clip(0.25 + 0.95 * h + rng.normal(0.0, 0.1, len(a)), 0.0, 1.6)
    frame = pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "goal": pl.Series(_GOALS, dtype=pl.String).gather(goal),
            "target": target,
            "actual": np.round(target * ratio, 1),
            "measured_at": _to_ts(win, day, _clock(rng, len(a), 16.0, 1.0)),
        }
    )
    return frame.sort(["measured_at", "account_id", "goal"])


# --- usage events -------------------------------------------------------------------------


def _write_events(
    rng: np.random.Generator, pop: _Population, win: _Window, per_account: int, folder: Path
) -> int:
    """Write one Parquet file of product events per month; return the number of events."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events-*.parquet"):
        old.unlink()  # a stale month would otherwise be read by the analytics glob
    tracked = rng.random(pop.n) >= 0.03  # some accounts never installed the analytics
    weight = pop.seats.astype(float) ** 0.7 * rng.lognormal(0.0, 0.35, pop.n) * tracked
    users = _user_pools(rng, pop)
    cum = _feature_mix(rng, pop)
    rate = per_account * pop.n / max(_expected_usage(pop, win, weight), 1e-12)
    total = 0
    for m in range(win.months):
        frame = _month_events(rng, pop, win, m, rate * weight, users, cum)
        frame.write_parquet(folder / f"events-{win.labels[m]}.parquet", compression="zstd")
        total += frame.height
    return total


def _user_pools(rng: np.random.Generator, pop: _Population) -> np.ndarray:
    """Return how many distinct users each account has (seat under-use planted in ~10%)."""
    under = rng.random(pop.n) < 0.10
    util = np.where(
        under,
        rng.uniform(0.05, 0.25, pop.n),
        np.clip(0.3 + 0.6 * pop.h0 + rng.normal(0.0, 0.1, pop.n), 0.1, 1.0),
    )
    return np.maximum(1, np.round(pop.seats * util)).astype(np.int64)


def _feature_mix(rng: np.random.Generator, pop: _Population) -> np.ndarray:
    """Return per-account cumulative event-name probabilities; healthier use more features."""
    k = np.clip(np.round(2 + 6 * pop.h0 + rng.normal(0.0, 1.0, pop.n)), 2, len(_EVENTS))
    w = _EVENT_WEIGHTS[None, :] * (np.arange(len(_EVENTS))[None, :] < k[:, None])
    cum = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1).astype(np.float32)
    cum[:, -1] = 1.0
    return cum


def _expected_usage(pop: _Population, win: _Window, weight: np.ndarray) -> float:
    """Return the expected number of events per unit rate (Simpson's rule per month)."""
    every, total = np.arange(pop.n), 0.0
    for m in range(win.months):
        lo, hi = _month_span(pop, win, m)
        mass = win.cum_dw[hi] - win.cum_dw[lo]
        ts = (lo.astype(float), (lo + hi) / 2, hi.astype(float))
        u = [_intensity(pop, every, t, _health(pop, every, t, m)) for t in ts]
        total += float((weight * mass * (u[0] + 4 * u[1] + u[2]) / 6).sum())
    return total


def _month_events(
    rng: np.random.Generator,
    pop: _Population,
    win: _Window,
    m: int,
    rate: np.ndarray,
    users: np.ndarray,
    cum: np.ndarray,
) -> pl.DataFrame:
    """Draw one month of events by thinning a Poisson process at each account's peak rate."""
    every = np.arange(pop.n)
    lo, hi = _month_span(pop, win, m)
    # Health is monotone within a month and ramp/expansion only grow, so this bounds the rate.
    h_lo = _health(pop, every, lo.astype(float), m)
    h_hi = _health(pop, every, hi.astype(float), m)
    peak = _intensity(pop, every, hi.astype(float), np.maximum(h_lo, h_hi))
    a = np.repeat(every, rng.poisson(rate * peak * (win.cum_dw[hi] - win.cum_dw[lo])))
    day = _place(rng, win, lo[a], hi[a])
    ms = np.floor(_clock(rng, len(a), 13.0, 3.2) * 1000 + rng.integers(0, 1000, len(a)))
    t = day + ms / 86_400_000.0
    h = _health(pop, a, t, m)
    u = _intensity(pop, a, t, h)
    keep = rng.random(len(a)) * peak[a] < u
    a, day, ms, h = a[keep], day[keep], ms[keep], h[keep]
    return _event_frame(rng, pop, win, a, day, ms, h, users, cum)


def _event_frame(
    rng: np.random.Generator,
    pop: _Population,
    win: _Window,
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
    pool = np.maximum(1, np.ceil(users[a] * share))
    user = np.floor(pool * rng.random(k) ** 1.3).astype(np.int64) + 1
    variant = rng.integers(0, 3, k)
    ts = win.base_us + day.astype(np.int64) * _US_PER_DAY + ms.astype(np.int64) * 1000
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


# --- writers ------------------------------------------------------------------------------


def _write_crm(path: Path, tables: dict[str, pl.DataFrame]) -> None:
    """Write the CRM tables into a fresh DuckDB file (DATE and TIMESTAMP columns)."""
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        for name, frame in tables.items():
            con.register("_demo_tmp", frame.to_arrow())
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _demo_tmp')
            con.unregister("_demo_tmp")
    finally:
        con.close()


def _write_surveys(folder: Path, surveys: pl.DataFrame) -> None:
    """Write one survey-tool CSV export per survey type, with the tool's own headers."""
    folder.mkdir(parents=True, exist_ok=True)
    export = surveys.with_columns(
        score=pl.col("score").cast(pl.Int64),
        submitted_at=pl.col("submitted_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
    ).rename(_SURVEY_HEADERS)
    for kind in _SURVEYS:
        export.filter(pl.col("Survey Type") == kind).write_csv(folder / f"{kind}.csv")


def _write_outcomes(path: Path, outcomes: pl.DataFrame) -> None:
    """Write outcomes as JSON Lines with ISO datetime strings."""
    outcomes.with_columns(
        measured_at=pl.col("measured_at").dt.strftime("%Y-%m-%dT%H:%M:%S")
    ).write_ndjson(path)


# --- public -------------------------------------------------------------------------------


def generate_demo(
    out_dir: Path,
    n_accounts: int = 2000,
    *,
    seed: int = 7,
    end: date,
    months: int = 15,
    events_per_account: int = 200,
) -> dict[str, int]:
    """Write seeded sample data into ``out_dir`` and return the row count of each dataset."""
    if n_accounts < 1 or months < 1 or events_per_account < 0:
        raise ValueError("n_accounts and months must be positive, events_per_account >= 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    win = _window(date(end.year, end.month, end.day), months)
    # One independent stream per dataset, so changing one generator leaves the others alone.
    streams = ("pop", "acc", "ord", "tic", "srv", "out", "evt")
    rngs = {k: np.random.default_rng([seed, i]) for i, k in enumerate(streams)}
    pop = _population(rngs["pop"], n_accounts, win)
    tables = {
        "accounts": _accounts_frame(rngs["acc"], pop, win),
        "orders": _orders_frame(rngs["ord"], pop, win),
        "tickets": _tickets_frame(rngs["tic"], pop, win),
    }
    surveys = _surveys_frame(rngs["srv"], pop, win)
    outcomes = _outcomes_frame(rngs["out"], pop, win)
    _write_crm(out_dir / "crm.duckdb", tables)
    _write_surveys(out_dir / "surveys", surveys)
    _write_outcomes(out_dir / "outcomes.jsonl", outcomes)
    n_events = _write_events(rngs["evt"], pop, win, events_per_account, out_dir / "analytics")
    return {
        **{name: frame.height for name, frame in tables.items()},
        "survey_responses": surveys.height,
        "usage_events": n_events,
        "outcomes": outcomes.height,
    }
