"""Parent accounts scored from their children (accounts + scores -> scores_rollup).

``accounts.parent_account_id`` links an account to the one it belongs to. Every account with
accounts below it, at any depth, gets one roll-up row over all of them (each counted once with
its own score and ARR; the parent's own score is not part of it):

- ``arr_weighted`` (default): Σ arr·score / Σ arr over the scored children with ARR;
- ``worst_child``: the lowest child score;
- ``mean``: the plain mean of the children's scores.

``share_at_risk`` is the children's ARR in the at-risk band over all their ARR. The drivers
roll up with the same weights, so they split the points the parent lost exactly: a child's
measure costs the parent (its weight in the method) × (the points it cost the child).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from tasks.config import Config
from tasks.errors import ConfigError
from tasks.score import segment_of

ROLLUP_COLUMNS = (
    "account_id",
    "as_of",
    "children_n",
    "score",
    "segment",
    "share_at_risk",
    "children_arr",
    "method",
    "worst_child_id",
    "worst_child_score",
    "top_drivers",
)
_EDGES = {"account_id": pl.String, "ancestor_id": pl.String}


def ancestors(accounts: pl.DataFrame) -> pl.DataFrame:
    """Return every (account, ancestor) pair at any depth; a cycle is a configuration error."""
    if "parent_account_id" not in accounts.columns:
        return pl.DataFrame(schema=_EDGES)
    links = accounts.select("account_id", "parent_account_id").filter(
        pl.col("parent_account_id").is_not_null() & (pl.col("parent_account_id") != "")
    )
    parent = dict(links.iter_rows())
    pairs: list[tuple[str, str]] = []
    for child in parent:
        seen = [child]
        node = parent.get(child)
        while node is not None:
            if node in seen:
                loop = seen[seen.index(node) :]
                raise ConfigError(
                    "accounts.parent_account_id forms a cycle: "
                    + " -> ".join([*loop, node])
                    + "; an account cannot be its own ancestor."
                )
            pairs.append((child, node))
            seen.append(node)
            node = parent.get(node)
    return pl.DataFrame(pairs, schema=_EDGES, orient="row")


def check_hierarchy(accounts: pl.DataFrame) -> None:
    """Stop the run (exit 2) when the parent links form a cycle."""
    ancestors(accounts)


def _weight(method: str) -> pl.Expr:
    """Each scored child's weight in its parent's score (summing to 1 per parent)."""
    scored = pl.col("score").is_not_null()
    if method == "arr_weighted":
        w = pl.when(scored & (pl.col("arr") > 0)).then(pl.col("arr")).otherwise(0.0)
    elif method == "mean":
        w = pl.when(scored).then(1.0).otherwise(0.0)
    else:  # worst_child: the lowest score, ties to the smallest account id
        worst = pl.col("score") == pl.col("score").min().over("ancestor_id")
        first = pl.col("account_id") == pl.col("account_id").filter(worst).min().over("ancestor_id")
        w = pl.when(scored & worst & first).then(1.0).otherwise(0.0)
    total = w.sum().over("ancestor_id")
    return pl.when(total > 0).then(w / total).otherwise(None)


def _drivers(family: pl.DataFrame, names: list[str], k: int) -> pl.DataFrame:
    """Name the children's measures that cost each parent the most points."""
    lost = [c for c in (f"lost_{n}" for n in names) if c in family.columns]
    if not lost:
        return pl.DataFrame(schema={"ancestor_id": pl.String, "top_drivers": pl.String})
    long = (
        family.select("ancestor_id", "account_id", "_w", *lost)
        .unpivot(index=["ancestor_id", "account_id", "_w"], variable_name="m", value_name="lost")
        .with_columns(
            (pl.col("_w") * pl.col("lost")).alias("cost"),
            pl.col("m").str.strip_prefix("lost_"),
        )
        .filter(pl.col("cost") >= 0.05)
        .sort(["ancestor_id", "cost", "account_id", "m"], descending=[False, True, False, False])
    )
    text = pl.format("{}: {} (-{})", "account_id", "m", pl.col("cost").round(1))
    return (
        long.group_by("ancestor_id", maintain_order=True)
        .head(k)
        .group_by("ancestor_id", maintain_order=True)
        .agg(text.str.join("; ").alias("top_drivers"))
    )


def rollup_scores(
    scored: pl.DataFrame, accounts: pl.DataFrame, cfg: Config, as_of: date
) -> pl.DataFrame:
    """Return one row per parent account: its children's roll-up under ``[rollup] method``."""
    method = cfg.rollup.method
    edges = ancestors(accounts)
    cols = ["account_id", "score", "segment", "arr"]
    lost = [c for c in scored.columns if c.startswith("lost_")]
    kids = scored.select(
        *[pl.col(c) if c in scored.columns else pl.lit(None, pl.Float64).alias(c) for c in cols],
        *lost,
    ).with_columns(pl.col("arr").cast(pl.Float64))
    family = edges.join(kids, on="account_id", how="inner").with_columns(
        _weight(method).alias("_w")
    )
    at_risk_arr = pl.when(pl.col("segment") == "at_risk").then(pl.col("arr")).otherwise(0.0)
    arr = pl.col("arr").fill_null(0.0)
    by_score = pl.col("score").is_not_null()
    rows = family.group_by("ancestor_id").agg(
        pl.len().cast(pl.Int64).alias("children_n"),
        pl.when(pl.col("_w").is_not_null().any())
        .then((pl.col("_w") * pl.col("score")).sum())
        .alias("score"),
        arr.sum().alias("children_arr"),
        at_risk_arr.fill_null(0.0).sum().alias("_risk"),
        pl.col("account_id")
        .filter(by_score)
        .sort_by(pl.col("score").filter(by_score))
        .first()
        .alias("worst_child_id"),
        pl.col("score").min().alias("worst_child_score"),
    )
    drivers = _drivers(family, [m.name for m in cfg.scoring.measures], cfg.scoring.top_drivers)
    return (
        rows.join(drivers, on="ancestor_id", how="left")
        .with_columns(
            pl.lit(as_of, pl.Date).alias("as_of"),
            segment_of(pl.col("score"), cfg).alias("segment"),
            pl.when(pl.col("children_arr") > 0)
            .then(pl.col("_risk") / pl.col("children_arr"))
            .alias("share_at_risk"),
            pl.lit(method).alias("method"),
        )
        .rename({"ancestor_id": "account_id"})
        .select(ROLLUP_COLUMNS)
        .sort("account_id")
    )
