"""The report's voice-of-the-customer block and KPI cards (texts, scores -> context).

The block lists each account a text signal moved or fired for with the texts behind it
(``tasks/text/evidence.py``), the themes of the window, and which languages were read; the
same per-account list is the ``voice.accounts`` key of the context for the e-mails and pages.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.report.cards import _kpi
from tasks.report.format import pct
from tasks.text.evidence import account_evidence, theme_rows


def voice_cards(kpis: Mapping[str, Any], prev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the complaint rate and mean sentiment cards, with their change since last week."""
    if "sentiment_mean" not in kpis:
        return []
    return [
        _kpi(
            "Complaints per 100 accounts",
            pct(kpis.get("complaint_rate")),
            pct(prev.get("complaint_rate")),
            1,
            note=f"{kpis.get('complaints_n', 0)} in {kpis.get('voice_days', 90)} days",
            better="lower",
        ),
        _kpi(
            "Customer sentiment",
            kpis.get("sentiment_mean"),
            prev.get("sentiment_mean"),
            2,
            note=f"n = {kpis.get('sentiment_n', 0)} texts, -1 to +1",
        ),
    ]


def voice_view(
    texts: pl.DataFrame | None,
    scores: pl.DataFrame,
    actions: pl.DataFrame,
    cfg: Config,
    as_of: date,
    pages: Collection[str] = (),
) -> dict[str, Any] | None:
    """Return the accounts with text evidence, the themes and the languages (None without texts).

    ``accounts`` holds those the report, a digest or one of the ``pages`` shows
    (``account_evidence``); ``more`` counts every other account with evidence.
    """
    if texts is None:
        return None
    accounts, total = account_evidence(texts, scores, actions, cfg, as_of, pages)
    read = texts.filter(pl.col("label").is_not_null())
    languages = (
        read.group_by(pl.col("language").fill_null("?"))
        .agg(pl.len().alias("n"), pl.col("sentiment").is_not_null().sum().alias("scored"))
        .sort("n", "language", descending=[True, False])
        .to_dicts()
    )
    return {
        "accounts": accounts,
        "shown": accounts[: cfg.report.top_n],
        "more": max(0, total - cfg.report.top_n),
        "themes": theme_rows(texts, as_of, cfg.text.days),
        "languages": languages,
        "days": cfg.text.days,
    }
