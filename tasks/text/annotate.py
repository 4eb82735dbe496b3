"""Read every piece of customer text once and union it into one frame (validated -> texts).

The text of a feedback row, a survey comment, or a ticket's subject and description gets
four columns on its validated frame: ``_text_lang``, ``_text_sentiment`` (null when the
language has no model), ``_text_label`` (positive, neutral, negative or
``language_unsupported``) and ``_text_themes``. ``texts_of`` then lists every text and every
complaint (a feedback row of channel ``complaint``, a ticket whose type or category
``[text] complaint_values`` names) as one frame for the measures and the evidence.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import polars as pl

from tasks.config import Config, TextConfig
from tasks.text.themes import themes_expr

UNSUPPORTED = "language_unsupported"  # the label of a text no model covers (models.UNSUPPORTED)
_SOURCES = ("feedback", "survey_responses", "tickets")
TEXT_SCHEMA: dict[str, Any] = {
    "account_id": pl.String,
    "source": pl.String,
    "item_id": pl.String,
    "channel": pl.String,
    "created_at": pl.Datetime("us"),
    "text": pl.String,
    "language": pl.String,
    "sentiment": pl.Float64,
    "label": pl.String,
    "themes": pl.List(pl.String),
    "complaint": pl.Boolean,
    "resolved_hours": pl.Float64,
    "resolved_at": pl.Datetime("us"),
    "rating": pl.Float64,
}


def _text_of(name: str, df: pl.DataFrame) -> pl.Expr | None:
    """Return the text column of a dataset, or None when it has none."""
    if name == "feedback":
        return pl.col("text")
    if name == "survey_responses" and "comment" in df.columns:
        return pl.col("comment")
    parts = [c for c in ("subject", "description") if c in df.columns]
    if name == "tickets" and parts:
        return pl.concat_str([pl.col(c) for c in parts], separator=". ", ignore_nulls=True)
    return None


def label_expr(sentiment: pl.Expr, has_text: pl.Expr, text: TextConfig) -> pl.Expr:
    """Label a sentiment: negative, neutral, positive, or unsupported when it has none."""
    return (
        pl.when(~has_text)
        .then(pl.lit(None, pl.String))
        .when(sentiment.is_null())
        .then(pl.lit(UNSUPPORTED))
        .when(sentiment < text.negative_below)
        .then(pl.lit("negative"))
        .when(sentiment > text.positive_above)
        .then(pl.lit("positive"))
        .otherwise(pl.lit("neutral"))
    )


def _after_preload() -> None:
    """Wait for Great Expectations' background import (tasks.validate.preload) to finish.

    Importing the NLP packages while that thread imports shared modules can end in Python's
    import-lock deadlock error (seen once in a demo run).
    """
    for thread in threading.enumerate():
        if thread.name == "preload-gx" and thread is not threading.current_thread():
            thread.join()


def annotate_frame(df: pl.DataFrame, text: pl.Expr, cfg: TextConfig) -> pl.DataFrame:
    """Add the language, sentiment, label and themes of each row's text."""
    _after_preload()
    from tasks.text.models import read_texts  # the NLP packages load only with a text source

    clean = text.str.strip_chars().replace("", None)
    body = df.select(clean.alias("t"))
    # Each distinct text is read and matched once and joined back: rows repeat texts (a
    # ticket's templated subject, a survey's stock comment), and at a million accounts the
    # per-row loop and the theme patterns over every row cost minutes.
    distinct = body.unique(maintain_order=True)["t"]
    readings = read_texts(distinct.drop_nulls().to_list(), cfg.min_language_confidence)
    table = pl.DataFrame(
        {
            "t": distinct,
            "_text_lang": pl.Series(
                [readings[t].language if t is not None else None for t in distinct], dtype=pl.String
            ),
            "_text_sentiment": pl.Series(
                [readings[t].sentiment if t is not None else None for t in distinct],
                dtype=pl.Float64,
            ),
        }
    ).with_columns(themes_expr(pl.col("t"), cfg.themes).alias("_text_themes"))
    read = body.join(table, on="t", how="left", nulls_equal=True, maintain_order="left")
    out = pl.concat([df, read.drop("t")], how="horizontal")
    return out.with_columns(
        label_expr(pl.col("_text_sentiment"), pl.col("_text_lang").is_not_null(), cfg).alias(
            "_text_label"
        )
    )


def annotate(cfg: Config, validated: dict[str, Any]) -> dict[str, Any]:
    """Return the validated datasets with their texts read (unchanged without a text stage)."""
    if not cfg.text_stage:
        return validated
    out = dict(validated)
    for name in _SOURCES:
        v = out.get(name)
        text = _text_of(name, v.accepted) if v is not None else None
        if v is not None and text is not None and "_text_lang" not in v.accepted.columns:
            out[name] = replace(v, accepted=annotate_frame(v.accepted, text, cfg.text))
    return out


def _complaint_ticket(df: pl.DataFrame, cfg: TextConfig) -> pl.Expr:
    hits = [
        pl.col(col).is_in(values).fill_null(False)
        for col, values in cfg.complaint_values.items()
        if col in df.columns
    ]
    return pl.any_horizontal(hits) if hits else pl.lit(False)


def _ticket_text(df: pl.DataFrame) -> pl.Expr:
    text = _text_of("tickets", df)
    return pl.lit(None, pl.String) if text is None else text


def _rows(name: str, df: pl.DataFrame, cfg: TextConfig) -> pl.DataFrame:
    has = "_text_lang" in df.columns
    null_s = pl.lit(None, pl.String)
    common = {
        "language": pl.col("_text_lang") if has else null_s,
        "sentiment": pl.col("_text_sentiment") if has else pl.lit(None, pl.Float64),
        "label": pl.col("_text_label") if has else null_s,
        "themes": pl.col("_text_themes") if has else pl.lit([], pl.List(pl.String)),
    }
    if name == "feedback":
        cols = {
            "source": pl.lit("feedback"),
            "item_id": pl.col("feedback_id"),
            "channel": pl.col("channel"),
            "created_at": pl.col("created_at"),
            "text": pl.col("text"),
            "complaint": pl.col("channel") == "complaint",
            "rating": pl.col("rating"),
        }
    elif name == "survey_responses":
        cols = {
            "source": pl.lit("survey"),
            "item_id": pl.col("response_id"),
            "channel": pl.concat_str(pl.lit("survey "), pl.col("survey")),
            "created_at": pl.col("submitted_at"),
            "text": pl.col("comment") if has else null_s,
            "complaint": pl.lit(False),
        }
    else:
        complaint = _complaint_ticket(df, cfg)
        hours = (pl.col("resolved_at") - pl.col("opened_at")).dt.total_seconds() / 3600
        cols = {
            "source": pl.lit("ticket"),
            "item_id": pl.col("ticket_id"),
            "channel": pl.when(complaint).then(pl.lit("complaint")).otherwise(pl.lit("ticket")),
            "created_at": pl.col("opened_at"),
            "text": _ticket_text(df) if has else null_s,
            "complaint": complaint,
            "resolved_hours": pl.when(complaint).then(hours),
            "resolved_at": pl.when(complaint).then(pl.col("resolved_at")),
        }
    frame = df.select(pl.col("account_id"), **cols, **common)
    if name == "tickets":  # a ticket counts as a text only with text, or as a complaint
        frame = frame.filter(pl.col("text").is_not_null() | pl.col("complaint"))
    elif name == "survey_responses":
        frame = frame.filter(pl.col("text").is_not_null())
    missing = [pl.lit(None, t).alias(c) for c, t in TEXT_SCHEMA.items() if c not in frame.columns]
    return frame.with_columns(missing).select([pl.col(c).cast(t) for c, t in TEXT_SCHEMA.items()])


def texts_of(data: dict[str, pl.DataFrame], cfg: Config) -> pl.DataFrame:
    """List every text and complaint of the datasets (reading the texts not yet read)."""
    frames = []
    for name in _SOURCES:
        df = data.get(name)
        if df is None:
            continue
        text = _text_of(name, df)
        if text is not None and "_text_lang" not in df.columns:
            df = annotate_frame(df, text, cfg.text)
        frames.append(_rows(name, df, cfg.text))
    return pl.concat(frames) if frames else pl.DataFrame(schema=TEXT_SCHEMA)
