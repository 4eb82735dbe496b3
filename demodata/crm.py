"""The demo CRM: accounts (with a custom attribute), orders with refunds, and helpdesk tickets."""

from __future__ import annotations

import numpy as np
import polars as pl

from demodata.population import (
    US_PER_DAY,
    Population,
    Window,
    account_years,
    anniversary_on_or_after,
    billing_factor,
    choice_rows,
    day_clock,
    health_at,
    make_ids,
    place,
    sample_points,
    to_ts,
)
from tasks.schemas import ACCOUNTS, ORDERS, TICKETS, TS

_TIERS = ("enterprise", "mid-market", "smb")
_PLANS = ("starter", "growth", "scale")
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
_PRIORITIES = ("low", "normal", "high", "urgent")
_RESOLUTION_MEDIAN_H = np.array([60.0, 36.0, 20.0, 8.0])  # by priority


def accounts_frame(rng: np.random.Generator, pop: Population, win: Window) -> pl.DataFrame:
    """Return the CRM accounts table (canonical columns plus ``plan``)."""
    n, start = pop.n, np.datetime64(win.start, "D")
    csm = rng.integers(0, len(_CSMS), n)
    last = np.minimum(pop.stop, win.days) - 1
    arr = np.round(pop.arr_base * billing_factor(pop, np.arange(n), last.astype(float)), 2)
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
            "renewal_date": start + anniversary_on_or_after(win, pop.cs_day, renew_from),
            "status": np.where(pop.churned, "churned", "active"),
            "churned_at": start + pop.stop,
            "plan": pl.Series(_PLANS).gather(pop.plan),
            "parent_account_id": None,  # a flat portfolio: no hierarchy, no scores_rollup rows
            "currency": "USD",
            "crm_id": None,  # the CRM's record id is the account id here
            # each CSM's Slack member id, as a CRM user field would carry it
            "slack_user_id": pl.Series([f"U0{i:07d}" for i in range(len(_CSMS))]).gather(csm),
        }
    )
    no_csm = pl.Series(rng.random(n) < 0.03)
    return (
        frame.with_columns(
            csm_email=pl.when(no_csm).then(None).otherwise(pl.col("csm_email")),
            slack_user_id=pl.when(no_csm).then(None).otherwise(pl.col("slack_user_id")),
            churned_at=pl.when(pl.col("status") == "churned").then(pl.col("churned_at")),
        )
        .select(*ACCOUNTS.schema.names(), "plan")
        .cast(ACCOUNTS.schema)
    )


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


def orders_frame(rng: np.random.Generator, pop: Population, win: Window) -> pl.DataFrame:
    """Return monthly subscription invoices, occasional add-ons and ~2% refunds."""
    inv_a, inv_d = _invoice_days(pop, win)
    amount = pop.arr_base[inv_a] * billing_factor(pop, inv_a, inv_d.astype(float)) / 12.0
    inv_s = rng.uniform(2 * 3600, 6 * 3600, len(inv_a)).round()  # the nightly billing run

    def addon_weight(a: np.ndarray, t: np.ndarray, m: int) -> np.ndarray:
        w: np.ndarray = health_at(pop, a, t, m) * (1.0 + 4.0 * (pop.expand[a] > 0))
        return w

    add_a, add_d = sample_points(rng, pop, win, addon_weight, 0.6 * account_years(pop))
    add_amount = pop.arr_base[add_a] / 12.0 * rng.uniform(0.2, 1.0, len(add_a))
    add_amount *= billing_factor(pop, add_a, add_d.astype(float))
    a = np.concatenate([inv_a, add_a])
    d = np.concatenate([inv_d, add_d])
    s = np.concatenate([inv_s, day_clock(rng, len(add_a), 14.0, 2.5)])
    amt = np.round(np.concatenate([amount, add_amount]), 2)
    ref_a, ref_d, ref_s, ref_amt = _refunds(rng, pop, win, a, d, amt)
    kind = np.repeat(np.array(["order", "refund"]), [len(a), len(ref_a)])
    return finish(
        pl.DataFrame(
            {
                "account_id": pop.ids.gather(np.concatenate([a, ref_a])),
                "ordered_at": to_ts(win, np.concatenate([d, ref_d]), np.concatenate([s, ref_s])),
                "amount": np.concatenate([amt, ref_amt]),
                "currency": "USD",
                "kind": kind,
                "cost": None,  # the demo has no cost of sales: the margin stays configured
            }
        ),
        "ordered_at",
        "order_id",
        "O",
        ORDERS.schema,
    )


def _invoice_days(pop: Population, win: Window) -> tuple[np.ndarray, np.ndarray]:
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
    pop: Population,
    win: Window,
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
        day_clock(rng, k, 11.0, 2.0),
        np.round(amount[pick][keep] * share, 2),
    )


def finish(
    frame: pl.DataFrame, ts_col: str, id_col: str, prefix: str, schema: pl.Schema
) -> pl.DataFrame:
    """Sort by time, number the rows with an id column and cast to the canonical schema."""
    frame = frame.sort([ts_col, "account_id"], maintain_order=True)
    frame = frame.with_columns(make_ids(prefix, frame.height).alias(id_col))
    return frame.select(schema.names()).cast(schema)


def tickets_frame(rng: np.random.Generator, pop: Population, win: Window) -> pl.DataFrame:
    """Return helpdesk tickets: more and more urgent for unhealthy accounts, plus spikes."""
    size = pop.seats.astype(float) ** 0.3

    def weight(a: np.ndarray, t: np.ndarray, m: int) -> np.ndarray:
        w: np.ndarray = size[a] * (0.4 + 2.0 * (1.0 - health_at(pop, a, t, m)))
        return w

    a, d = sample_points(rng, pop, win, weight, 5.0 * account_years(pop))
    s = day_clock(rng, len(a), 11.5, 3.0)
    h = health_at(pop, a, d + s / 86400.0, win.month_of(d))
    prio = choice_rows(rng, _priority_probs(h))
    spike_a, spike_d = _spikes(rng, pop, win)
    a, d = np.concatenate([a, spike_a]), np.concatenate([d, spike_d])
    s = np.concatenate([s, day_clock(rng, len(spike_a), 11.5, 3.0)])
    h = np.concatenate([h, health_at(pop, spike_a, spike_d.astype(float), win.month_of(spike_d))])
    prio = np.concatenate([prio, rng.integers(2, 4, len(spike_a))])
    slow = np.concatenate([np.ones(len(h) - len(spike_a)), np.full(len(spike_a), 8.0)])
    return _ticket_rows(rng, pop, win, a, d, s, h, prio, slow)


def _priority_probs(h: np.ndarray) -> np.ndarray:
    """Return (k, 4) probabilities of low/normal/high/urgent given health."""
    low, high, urgent = 0.30 * h, 0.10 + 0.15 * (1 - h), 0.02 + 0.10 * (1 - h)
    return np.column_stack([low, 1.0 - low - high - urgent, high, urgent])


def _spikes(
    rng: np.random.Generator, pop: Population, win: Window
) -> tuple[np.ndarray, np.ndarray]:
    """Plant bursts of high/urgent tickets in the last weeks for about 5% of accounts."""
    first = np.maximum(win.days - rng.integers(7, 29, pop.n), np.maximum(pop.cs_day, 0))
    on = (rng.random(pop.n) < 0.05) & (first < pop.stop)
    a = np.repeat(np.arange(pop.n), np.where(on, 2 + rng.poisson(4.0, pop.n), 0))
    return a, place(rng, win, first[a], pop.stop[a])


def _ticket_rows(
    rng: np.random.Generator,
    pop: Population,
    win: Window,
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
    opened = win.base_us + d * US_PER_DAY + (s * 1e6).astype(np.int64)
    resolved = opened + np.maximum(np.round(hours * 3600.0), 60).astype(np.int64) * 1_000_000
    churn_us = win.base_us + pop.stop[a] * US_PER_DAY
    # Offboarding closes whatever is still open when a customer leaves (clock stops at 23:59:58).
    closed = np.maximum((opened + churn_us) // 2_000_000 * 1_000_000, opened + 1_000_000)
    resolved = np.where(pop.churned[a] & (resolved >= churn_us), closed, resolved)
    end_us = win.base_us + win.days * US_PER_DAY
    is_open = (resolved >= end_us) | (rng.random(k) < 0.01 * ~pop.churned[a])
    rated = ~is_open & (rng.random(k) < 0.5)
    sat = 1.8 + 3.6 * h - 0.35 * np.log1p(hours / 24.0) + rng.normal(0.0, 0.7, k)
    # drawn last, so the columns above stay as they were: complaints come from unhealthy accounts
    kind = np.where(rng.random(k) < 0.05 + 0.25 * (1 - h), "complaint", "question")
    frame = pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "opened_at": pl.Series(opened).cast(TS),
            "resolved_at": pl.Series(np.where(is_open, 0, resolved)).cast(TS),
            "priority": pl.Series(_PRIORITIES).gather(prio),
            "status": np.where(is_open, "open", "resolved"),
            "satisfaction": np.clip(np.round(sat), 1, 5),
            "type": kind,
            "subject": None,
            "description": None,
            "category": None,
        }
    ).with_columns(
        resolved_at=pl.when(pl.Series(~is_open)).then(pl.col("resolved_at")),
        satisfaction=pl.when(pl.Series(rated)).then(pl.col("satisfaction")),
    )
    return finish(frame, "opened_at", "ticket_id", "T", TICKETS.schema)
