"""The report's sections: account lists, segment movement, KPI cards, data quality and method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.kpis import Kpis
from tasks.report.format import (
    ALL_SEGMENTS,
    RANK,
    SEGMENT_COLOURS,
    SEGMENT_LABELS,
    count_noun,
    fmt_num,
    money,
    pct_filter,
)

RENEWAL_SOON_DAYS = 90
_ACCOUNT_COLUMNS = (
    "account_id",
    "name",
    "csm_email",
    "tier",
    "arr",
    "score",
    "segment",
    "score_delta_1w",
    "drop_alert",
    "top_drivers",
    "change_drivers",
    "coverage",
    "renewal_date",
    "days_to_renewal",
    "license_utilisation",
    "nps_account",
)


def trend_rows_of(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return one row per past week of KPIs, newest first."""
    rows = []
    for k in reversed(history):
        seg = k.get("accounts_by_segment") or {}
        rows.append(
            {
                "as_of": k["as_of"],
                "mean_score": fmt_num(k.get("mean_score"), 1),
                "counts": [seg.get(s, 0) for s in ALL_SEGMENTS],
                "at_risk_arr": money((k.get("arr_by_segment") or {}).get("at_risk")),
                "nps": fmt_num(k.get("nps"), 1),
            }
        )
    return rows


def movement_matrix(scores: pl.DataFrame, prev: pl.DataFrame | None) -> dict[str, Any] | None:
    """Count accounts by last week's segment (rows) and this week's (columns)."""
    if prev is None or prev.is_empty():
        return None
    j = scores.select(
        "account_id", pl.col("segment").fill_null("insufficient_data").alias("now")
    ).join(
        prev.select("account_id", pl.col("segment").fill_null("insufficient_data").alias("before")),
        on="account_id",
        how="inner",
    )
    counts = {
        (r["before"], r["now"]): r["len"]
        for r in j.group_by("before", "now").len().iter_rows(named=True)
    }

    def tone(b: str, n: str) -> str:
        if b == n:
            return "same"
        if b in RANK and n in RANK:
            return "worse" if RANK[n] > RANK[b] else "better"
        return "other"

    return {
        "segments": [{"key": s, "label": SEGMENT_LABELS[s]} for s in ALL_SEGMENTS],
        "rows": [
            {
                "label": SEGMENT_LABELS[b],
                "cells": [
                    {"count": counts.get((b, n), 0), "tone": tone(b, n)} for n in ALL_SEGMENTS
                ],
                "total": sum(counts.get((b, n), 0) for n in ALL_SEGMENTS),
            }
            for b in ALL_SEGMENTS
        ],
        "compared": j.height,
        "into_at_risk": sum(c for (b, n), c in counts.items() if n == "at_risk" and b != n),
        "out_of_at_risk": sum(c for (b, n), c in counts.items() if b == "at_risk" and b != n),
        "worse": sum(c for (b, n), c in counts.items() if tone(b, n) == "worse"),
        "better": sum(c for (b, n), c in counts.items() if tone(b, n) == "better"),
    }


def latest_comments(surveys: pl.DataFrame | None, as_of: date, days: int) -> pl.DataFrame | None:
    """Return each account's latest survey comment in the window, with its survey and score."""
    if surveys is None or "comment" not in surveys.columns:
        return None
    start = datetime.combine(as_of - timedelta(days=days), time())
    end = datetime.combine(as_of + timedelta(days=1), time())
    return (
        surveys.filter(
            pl.col("comment").str.strip_chars().str.len_chars().gt(0)
            & pl.col("submitted_at").is_between(start, end, closed="left")
        )
        .sort("submitted_at", descending=True)
        .group_by("account_id", maintain_order=True)
        .first()
        .select(
            "account_id",
            pl.format(
                "“{}” ({} {}, {})",
                pl.col("comment").str.strip_chars(),
                pl.col("survey").str.to_uppercase(),
                pl.col("score").round(0).cast(pl.Int64),
                pl.col("submitted_at").dt.date(),
            ).alias("comment"),
        )
    )


def account_rows(
    df: pl.DataFrame, actions: pl.DataFrame, comments: pl.DataFrame | None = None
) -> list[dict[str, Any]]:
    """Return the report rows of listed accounts with their actions, renewal and comment."""
    # the listed accounts only: grouping every action (100k at scale) cost 0.1 s per list
    listed = actions.join(df.select("account_id"), on="account_id", how="semi")
    acts = listed.group_by("account_id", maintain_order=True).agg(
        pl.col("action").str.join("; ").alias("actions")
    )
    rows = df.join(acts, on="account_id", how="left", maintain_order="left")
    if comments is not None:
        rows = rows.join(comments, on="account_id", how="left", maintain_order="left")
    out = []
    for r in rows.to_dicts():
        days = r.get("days_to_renewal")
        r["renewal"] = "" if r.get("renewal_date") is None else str(r["renewal_date"])
        r["renewal_soon"] = days is not None and 0 <= days <= RENEWAL_SOON_DAYS
        r["renewal_passed"] = days is not None and days < 0
        r["segment_label"] = SEGMENT_LABELS.get(r.get("segment") or "insufficient_data", "")
        r["utilisation"] = pct_filter(r.get("license_utilisation"))
        r.setdefault("comment", None)
        out.append(r)
    return out


def _optional(scores: pl.DataFrame, column: str) -> pl.Expr:
    return pl.col(column) if column in scores.columns else pl.lit(None, pl.Float64)


def account_lists(scores: pl.DataFrame, cfg: Config) -> dict[str, pl.DataFrame]:
    """Return the report's account lists: at risk, drops, expansion, advocates, unscored."""
    n = cfg.report.top_n
    view = scores.select([c for c in _ACCOUNT_COLUMNS if c in scores.columns])
    healthy = pl.col("segment") == "healthy"
    return {
        "at_risk": view.filter(pl.col("segment") == "at_risk").sort(
            "arr", "score", descending=[True, False], nulls_last=True
        ),
        "drops": view.filter(pl.col("score_delta_1w") < 0).sort("score_delta_1w").head(n),
        "expansion": view.filter(healthy & (_optional(scores, "license_utilisation") >= 0.85))
        .sort("arr", descending=True, nulls_last=True)
        .head(n),
        "advocates": view.filter(healthy & (_optional(scores, "nps_account") >= 50))
        .sort("score", "arr", descending=True, nulls_last=True)
        .head(n),
        "insufficient": view.filter(pl.col("score").is_null()).sort(
            "arr", descending=True, nulls_last=True
        ),
    }


def p_alive_drops(scores: pl.DataFrame, n: int) -> list[dict[str, Any]] | None:
    """List the accounts whose P(alive) fell most in 4 weeks (None without the purchase model)."""
    if "p_alive_change_4w" not in scores.columns:
        return None
    rows = (
        scores.filter(pl.col("p_alive_change_4w") < 0)
        .sort("p_alive_change_4w")
        .head(n)
        .select("account_id", "name", "arr", "p_alive", "p_alive_change_4w")
    )
    return [
        {
            "account_id": r["account_id"],
            "name": r["name"],
            "arr": "–" if r["arr"] is None else f"{r['arr']:,.0f}",
            "p_alive": f"{r['p_alive']:.0%}",
            "change": f"{r['p_alive_change_4w'] * 100:+.0f} pts",
        }
        for r in rows.iter_rows(named=True)
    ]


def segment_rows(kpis: Kpis, prev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return one row per segment: accounts, ARR, their shares and the change in count."""
    counts, arr = kpis["accounts_by_segment"], kpis["arr_by_segment"]
    before = prev.get("accounts_by_segment") or {}
    n_total, arr_total = sum(counts.values()) or 1, sum(arr.values()) or 1.0
    return [
        {
            "key": s,
            "label": SEGMENT_LABELS[s],
            "colour": SEGMENT_COLOURS[s],
            "count": counts.get(s, 0),
            "share": f"{100 * counts.get(s, 0) / n_total:.0f}%",
            "delta": f"{counts.get(s, 0) - before[s]:+d}" if s in before else None,
            "arr": arr.get(s, 0.0),
            "arr_share": f"{100 * arr.get(s, 0.0) / arr_total:.1f}%",
        }
        for s in ALL_SEGMENTS
    ]


def summary_lines(
    scores: pl.DataFrame,
    kpis: Kpis,
    lists: dict[str, pl.DataFrame],
    movement: dict[str, Any] | None,
    validation: dict[str, Any],
    cfg: Config,
) -> list[dict[str, str]]:
    """Return the 'at a glance' lines of the report, each with its tone."""
    at_risk, arr = lists["at_risk"], kpis["arr_by_segment"]
    share = 100 * arr.get("at_risk", 0.0) / (sum(arr.values()) or 1.0)
    out = [
        (
            "bad" if at_risk.height else "good",
            f"{count_noun(at_risk.height, 'account')} at risk, holding "
            f"{money(arr.get('at_risk', 0.0))} ARR ({share:.1f}% of the portfolio).",
        )
    ]
    if "days_to_renewal" in at_risk.columns:
        soon = at_risk.filter(pl.col("days_to_renewal").is_between(0, RENEWAL_SOON_DAYS))
        if soon.height:
            out.append(
                (
                    "bad",
                    f"{soon.height:,} of them renew{'s' if soon.height == 1 else ''} within "
                    f"{RENEWAL_SOON_DAYS} days ({money(float(soon['arr'].sum()))} ARR).",
                )
            )
    if movement:
        out.append(
            (
                "bad" if movement["into_at_risk"] > movement["out_of_at_risk"] else "info",
                f"Since last week {movement['into_at_risk']:,} moved into at risk and "
                f"{movement['out_of_at_risk']:,} moved out; {count_noun(movement['worse'], 'account')} "
                f"went to a worse segment, {movement['better']:,} to a better one.",
            )
        )
    alerts = int(scores["drop_alert"].sum()) if "drop_alert" in scores.columns else 0
    if alerts:
        out.append(
            (
                "bad",
                f"{count_noun(alerts, 'account')} lost {cfg.scoring.drop_alert:g} points or more "
                "since last week.",
            )
        )
    if n := lists["insufficient"].height:
        out.append(("info", f"Too little data to score {count_noun(n, 'account')}."))
    if q := sum(v["rows_quarantined"] for v in validation["datasets"].values()):
        out.append(("info", f"The data checks quarantined {count_noun(q, 'input row')}."))
    return [{"tone": tone, "text": text} for tone, text in out]
