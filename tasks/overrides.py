"""Manual overrides: a CSM sets an account's score or segment, with a reason and an expiry.

The computed score is kept beside the override (``computed_score``, ``computed_segment``), both
are shown, and an override stops applying the day after it expires. Overrides live in a file the
team keeps (``[scoring.overrides] uri``), so no run can lose them.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from tasks.config import Config
from tasks.errors import ConfigError
from tasks.schemas import SEGMENTS
from tasks.score import segment_of

OVERRIDE_SCHEMA = {
    "account_id": pl.String,
    "score": pl.Float64,
    "segment": pl.String,
    "reason": pl.String,
    "expires": pl.Date,
    "author": pl.String,
}


def load_overrides(cfg: Config, as_of: date) -> pl.DataFrame | None:
    """Read the overrides file and return the overrides in force on ``as_of``."""
    if cfg.scoring.overrides is None:
        return None
    path = cfg.path(cfg.scoring.overrides.uri)
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except FileNotFoundError:
        raise ConfigError(f"Overrides file {path} does not exist.") from None
    except pl.exceptions.PolarsError as err:
        raise ConfigError(
            f"Overrides file {path} cannot be read: {str(err).splitlines()[0]}."
        ) from None
    return _check(raw, path.name).filter(pl.col("expires") >= as_of)


def _check(raw: pl.DataFrame, name: str) -> pl.DataFrame:
    for col in ("account_id", "reason", "expires"):
        if col not in raw.columns:
            raise ConfigError(f"Overrides file {name} has no column {col!r}.")
    df = raw.select(
        [
            (pl.col(c) if c in raw.columns else pl.lit(None, pl.String))
            .str.strip_chars()
            .cast(t, strict=False)
            .alias(c)
            if t != pl.Date
            else pl.col(c).str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias(c)
            for c, t in OVERRIDE_SCHEMA.items()
        ]
    ).with_row_index("line", offset=2)
    bad = df.filter(
        pl.col("account_id").is_null()
        | pl.col("reason").is_null()
        | pl.col("expires").is_null()
        | (pl.col("score").is_null() & pl.col("segment").is_null())
        | ~pl.col("score").is_between(0, 100).fill_null(True)
        | ~pl.col("segment").is_in(list(SEGMENTS)).fill_null(True)
    )
    if bad.height:
        line = bad["line"][0]
        raise ConfigError(
            f"Overrides file {name}, line {line}: needs account_id, reason, expires (YYYY-MM-DD) and a "
            f"score in 0-100 or a segment ({', '.join(SEGMENTS)})."
        )
    dup = df.filter(pl.col("account_id").is_duplicated())
    if dup.height:
        raise ConfigError(
            f"Overrides file {name} has more than one override for account {dup['account_id'][0]}."
        )
    return df.drop("line")


def apply_overrides(
    scored: pl.DataFrame, overrides: pl.DataFrame | None, cfg: Config
) -> pl.DataFrame:
    """Apply overrides in force, keeping the computed score and segment beside them."""
    out = scored.with_columns(
        pl.col("score").alias("computed_score"), pl.col("segment").alias("computed_segment")
    )
    if overrides is None or overrides.is_empty():
        return out.with_columns(
            pl.lit(None, pl.String).alias("override_reason"),
            pl.lit(None, pl.Date).alias("override_expires"),
            pl.lit(None, pl.String).alias("override_author"),
        )
    o = overrides.select(
        "account_id",
        pl.col("score").alias("_o_score"),
        pl.col("segment").alias("_o_segment"),
        pl.col("reason").alias("override_reason"),
        pl.col("expires").alias("override_expires"),
        pl.col("author").alias("override_author"),
    )
    out = out.join(o, on="account_id", how="left", maintain_order="left")
    score = pl.coalesce("_o_score", "score")
    return (
        out.with_columns(score.alias("score"))
        .with_columns(
            pl.coalesce(
                "_o_segment",
                pl.when(pl.col("_o_score").is_not_null())
                .then(segment_of(score, cfg))
                .otherwise(pl.col("segment")),
            ).alias("segment")
        )
        .drop("_o_score", "_o_segment")
    )
