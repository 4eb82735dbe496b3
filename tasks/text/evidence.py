"""The texts behind a text signal, for the report, the account pages and the digests.

An account has evidence when a text measure cost it points or a playbook that reads a text
measure fired for it: then the ``[text] evidence`` texts of the window that weigh most in the
signal's direction (most negative first: every such signal lowered the score or fired a
playbook meant for bad news), each with its channel, date, language, sentiment and themes.
The text is truncated here and escaped by the templates (Jinja2 autoescape), never trusted
as markup.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.report.format import fmt_signed
from tasks.rules import rule_columns
from tasks.text.features import TEXT_FEATURES

MAX_CHARS = 180
MIN_POINTS = 0.05  # points a measure must cost to count as "moving the score"
DIGEST_ROWS = 10  # the accounts with text evidence a CSM's digest lists


def _window(texts: pl.DataFrame, as_of: date, days: int) -> pl.DataFrame:
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    start = end - timedelta(days=days)
    return texts.filter(pl.col("created_at").is_between(start, end, closed="left"))


def text_measures(cfg: Config) -> list[str]:
    """Return the configured measures that read a text feature."""
    return [m.name for m in cfg.scoring.measures if m.source in TEXT_FEATURES]


def _text_actions(cfg: Config, actions: pl.DataFrame) -> pl.DataFrame:
    """Return the fired actions whose playbook reads a text measure."""
    names = [r.action for r in cfg.actions if set(rule_columns(r)) & set(TEXT_FEATURES)]
    return actions.filter(pl.col("action").is_in(names)).select("account_id", "action")


def truncate(text: str, n: int = MAX_CHARS) -> str:
    """Shorten a text to ``n`` characters on a word boundary, marking the cut."""
    text = " ".join(text.split())
    if len(text) <= n:
        return text
    cut = text[: n - 1].rsplit(" ", 1)[0] if " " in text[: n - 1] else text[: n - 1]
    return cut + "…"


def truncated(text: pl.Expr, n: int = MAX_CHARS) -> pl.Expr:
    """``truncate`` as an expression: whitespace collapsed, cut on a word boundary, marked."""
    flat = text.str.replace_all(r"\s+", " ").str.strip_chars(" ")
    # the longest run of whole words in the first n - 1 characters (all of them without a space)
    cut = flat.str.slice(0, n - 1).str.replace(r"^(.*) [^ ]*$", "${1}")
    return pl.when(flat.str.len_chars() <= n).then(flat).otherwise(cut + "…")


def _picks(
    texts: pl.DataFrame, moved: pl.DataFrame, cfg: Config, as_of: date
) -> dict[str, list[dict[str, Any]]]:
    """Return each moved account's ``[text] evidence`` texts of the window, in one sort.

    Every moved account's signal cost points or fired a playbook, so its most negative texts
    come first; ties go to the newest, then to the order the texts were read in.
    """
    recent = _window(texts.filter(pl.col("text").is_not_null()), as_of, cfg.text.days)
    rows = (
        recent.filter(pl.col("sentiment").is_not_null())
        .join(moved, on="account_id", how="semi", maintain_order="left")
        .sort(
            "account_id",
            "sentiment",
            "created_at",
            descending=[False, False, True],
            maintain_order=True,
        )
        .group_by("account_id", maintain_order=True)
        .head(cfg.text.evidence)
    )
    shown = rows.select(
        "account_id",
        "channel",
        pl.col("created_at").dt.strftime("%Y-%m-%d").alias("date"),
        truncated(pl.col("text")).alias("text"),
        "sentiment",
        "label",
        "language",
        pl.col("themes").list.join(", ").fill_null("").alias("themes"),
    )
    # columns to lists, not rows to dicts: 150,000 texts at 100k accounts in a fraction of a second
    out: dict[str, list[dict[str, Any]]] = {}
    for account, channel, day, text, sentiment, label, language, themes in zip(
        *(shown.get_column(c).to_list() for c in shown.columns), strict=True
    ):
        out.setdefault(account, []).append(
            {
                "channel": channel,
                "date": day,
                "text": text,
                "sentiment": fmt_signed(sentiment, 2),
                "label": label,
                "language": language,
                "themes": themes,
            }
        )
    return out


def account_evidence(
    texts: pl.DataFrame,
    scores: pl.DataFrame,
    actions: pl.DataFrame,
    cfg: Config,
    as_of: date,
    pages: Collection[str] = (),
) -> tuple[list[dict[str, Any]], int]:
    """Return, per account a text signal moved or fired for, the signal and its texts, and how
    many accounts that is.

    The list, in the report's order, holds only the accounts something shows: the report's
    first ``[report] top_n``, each CSM's first ``DIGEST_ROWS`` (their digest's list) and the
    accounts of ``pages``. At 100k accounts nearly every account has a text measure that cost
    points, and formatting them all took 2 s of every date of a backfill.
    """
    measures = [m for m in text_measures(cfg) if f"lost_{m}" in scores.columns]
    fired = _text_actions(cfg, actions)
    lost = pl.sum_horizontal([pl.col(f"lost_{m}") for m in measures]) if measures else pl.lit(0.0)
    cols = [c for c in ("name", "csm_email", "sentiment_90d", "sentiment_n_90d") if c in scores]
    moved = scores.select(
        "account_id",
        *cols,
        lost.alias("_lost"),
        *[pl.col(f"lost_{m}").alias(f"_l_{m}") for m in measures],
    ).join(
        fired.group_by("account_id").agg(pl.col("action").unique().sort()),
        on="account_id",
        how="left",
    )
    moved = moved.filter((pl.col("_lost") >= MIN_POINTS) | pl.col("action").is_not_null())
    if moved.is_empty():
        return [], 0
    out = []
    # accounts a text playbook fired for first: the report lists the first [report] top_n
    fired_first = moved.with_columns(pl.col("action").is_not_null().alias("_fired"))
    ranked = fired_first.sort("_fired", "_lost", "account_id", descending=[True, True, False])
    owner = pl.col("csm_email") if "csm_email" in ranked.columns else pl.lit(None, pl.String)
    shown = ranked.filter(
        (pl.int_range(pl.len()) < cfg.report.top_n)
        | (pl.int_range(pl.len()).over(owner) < DIGEST_ROWS)
        | pl.col("account_id").is_in(list(pages))
    )
    picked = _picks(texts, shown.select("account_id"), cfg, as_of)
    for r in shown.to_dicts():
        items = picked.get(r["account_id"], [])
        out.append(
            {
                "account_id": r["account_id"],
                "name": r.get("name") or r["account_id"],
                "csm_email": r.get("csm_email"),
                "sentiment": fmt_signed(r.get("sentiment_90d"), 2),
                "texts_n": int(r.get("sentiment_n_90d") or 0),
                "points_lost": round(float(r["_lost"]), 1),
                "measures": [
                    f"{m} (-{r[f'_l_{m}']:.1f})" for m in measures if r[f"_l_{m}"] >= MIN_POINTS
                ],
                "actions": r["action"] or [],
                "evidence": items,
            }
        )
    return out, ranked.height


def voice_kpis(texts: pl.DataFrame, accounts_active: int, as_of: date, days: int) -> dict[str, Any]:
    """Return the portfolio's complaint rate and mean sentiment in the window, with their counts."""
    recent = _window(texts, as_of, days)
    complaints = int(recent["complaint"].sum())
    scored = recent["sentiment"].drop_nulls()
    return {
        "complaints_n": complaints,
        "complaint_rate": round(complaints / accounts_active, 4) if accounts_active else None,
        "sentiment_mean": round(float(scored.mean()), 4) if scored.len() else None,  # type: ignore[arg-type]
        "sentiment_n": scored.len(),
        "texts_unsupported_n": int((recent["label"] == "language_unsupported").sum()),
        "voice_days": days,
    }


def theme_rows(texts: pl.DataFrame, as_of: date, days: int) -> list[dict[str, Any]]:
    """Count the window's texts per theme, with how many of them are negative."""
    recent = _window(texts, as_of, days).filter(pl.col("sentiment").is_not_null())
    long = recent.select("themes", "label").explode("themes").drop_nulls("themes")
    counts = long.group_by("themes").agg(
        pl.len().alias("n"), (pl.col("label") == "negative").sum().alias("negative")
    )
    return (
        counts.sort("n", "themes", descending=[True, False]).rename({"themes": "theme"}).to_dicts()
    )
