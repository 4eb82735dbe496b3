"""Normalise measures, weight them into dimensions and a score, and explain it (features -> scores).

For each measure m with data, its effective weight is
``e_m = (W_d / sum of W over dimensions with data) * (w_m / sum of w over measures of d with data)``,
so the e_m of an account sum to 1, the score is ``sum(e_m * s_m)``, the points a measure costs
against a full score are ``e_m * (100 - s_m)`` and its contribution is ``e_m * s_m``. Coverage is
the share of configured weight whose measures had data. Contributions are stored in history, so
a week's change splits exactly into per-measure parts.
"""

from __future__ import annotations

import polars as pl
from polars.expr.whenthen import ChainedThen, Then

from tasks.config import Config, MeasureConfig
from tasks.errors import ConfigError
from tasks.features.build import KNOWN_FEATURES
from tasks.schemas import DIMENSIONS

BAND_POINTS = (0.0, 40.0, 70.0, 100.0)


def _piecewise(x: pl.Expr, breaks: list[float], points: tuple[float, ...]) -> pl.Expr:
    expr: Then | ChainedThen = pl.when(x <= breaks[0]).then(pl.lit(points[0]))
    for i in range(1, len(breaks)):
        b0, b1, p0, p1 = breaks[i - 1], breaks[i], points[i - 1], points[i]
        expr = expr.when(x <= b1).then(p0 + (x - b0) / (b1 - b0) * (p1 - p0))
    return expr.otherwise(pl.lit(points[-1]))


def normalise(m: MeasureConfig) -> pl.Expr:
    """Return the expression that maps a measure's raw value onto 0-100 points (null stays null)."""
    x = pl.col(m.source)
    higher = m.direction == "higher"
    if m.points is not None:
        return x.cast(pl.String).replace_strict(m.points, default=None, return_dtype=pl.Float64)
    if m.method == "bands":
        assert m.bands is not None
        pts = BAND_POINTS if higher else tuple(reversed(BAND_POINTS))
        return pl.when(x.is_not_null()).then(_piecewise(x.cast(pl.Float64), m.bands, pts))
    if m.method == "minmax":
        assert m.min is not None
        assert m.max is not None
        share = ((x - m.min) / (m.max - m.min)).clip(0, 1) * 100
        return share if higher else 100 - share
    if m.method == "target":
        assert m.target is not None
        ratio = x / m.target if higher else pl.when(x > 0).then(m.target / x).otherwise(1.0)
        return pl.when(x.is_not_null()).then(ratio.clip(0, 1) * 100)
    return _percentile(x, m.peer_group, higher)


def _percentile(x: pl.Expr, group: str | None, higher: bool) -> pl.Expr:
    rank = x.rank("average")
    n = x.count()
    if group:
        rank, n = rank.over(group), n.over(group)
    pct = pl.when(n > 1).then((rank - 1) / (n - 1) * 100).otherwise(50.0)
    return pl.when(x.is_not_null()).then(pct if higher else 100 - pct)


def measure_scores(features: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Add one ``m_<measure>`` column of 0-100 points per configured measure."""
    unknown = [
        m
        for m in cfg.scoring.measures
        if m.source not in features.columns and m.source not in KNOWN_FEATURES
    ]
    if unknown:
        raise ConfigError(
            f"[[scoring.measures]] {unknown[0].name!r} reads feature {unknown[0].source!r}, which is neither "
            "a built-in feature nor a column of the accounts source."
        )
    exprs = [
        (normalise(m) if m.source in features.columns else pl.lit(None, pl.Float64))
        .cast(pl.Float64)
        .alias(f"m_{m.name}")
        for m in cfg.scoring.measures
    ]
    return features.with_columns(exprs)


def _weights(cfg: Config) -> dict[str, dict[str, float]]:
    by_dim: dict[str, dict[str, float]] = {d: {} for d in DIMENSIONS}
    for m in cfg.scoring.measures:
        by_dim[m.dimension][m.name] = m.weight
    return by_dim


def _has(name: str) -> pl.Expr:
    return pl.col(f"m_{name}").is_not_null()


def effective_weights(df: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Add dimension scores, ``e_<measure>`` effective weights, coverage and the raw score."""
    dims = cfg.scoring.dimensions
    by_dim = {d: ms for d, ms in _weights(cfg).items() if ms and dims.get(d, 0) > 0}
    total_w = sum(dims[d] for d in by_dim)
    dim_exprs, avail_w = [], {}
    for d, ms in by_dim.items():
        avail_w[d] = pl.sum_horizontal(
            [pl.when(_has(n)).then(w).otherwise(0.0) for n, w in ms.items()]
        )
        num = pl.sum_horizontal([pl.col(f"m_{n}").fill_null(0.0) * w for n, w in ms.items()])
        dim_exprs.append(pl.when(avail_w[d] > 0).then(num / avail_w[d]).alias(d))
    df = df.with_columns(dim_exprs)
    dim_avail = pl.sum_horizontal(
        [pl.when(pl.col(d).is_not_null()).then(dims[d]).otherwise(0.0) for d in by_dim]
    )
    e_exprs, cov = [], []
    for d, ms in by_dim.items():
        for n, w in ms.items():
            share = (
                pl.when(_has(n) & (dim_avail > 0))
                .then(dims[d] / dim_avail * w / avail_w[d])
                .otherwise(0.0)
            )
            e_exprs.append(share.alias(f"e_{n}"))
            cov.append(
                pl.when(_has(n)).then(dims[d] / total_w * w / sum(ms.values())).otherwise(0.0)
            )
    weightless = [
        pl.lit(0.0).alias(f"e_{n}")
        for d, ms in _weights(cfg).items()
        if d not in by_dim
        for n in ms
    ]
    absent = [
        *weightless,
        *[pl.lit(None, pl.Float64).alias(d) for d in DIMENSIONS if d not in by_dim],
    ]
    df = df.with_columns(*e_exprs, *absent, pl.sum_horizontal(cov).alias("coverage"))
    raw = pl.sum_horizontal(
        [pl.col(f"e_{n}") * pl.col(f"m_{n}").fill_null(0.0) for ms in by_dim.values() for n in ms]
    )
    return df.with_columns(pl.when(dim_avail > 0).then(raw).alias("_raw_score"))


def segment_of(score: pl.Expr, cfg: Config) -> pl.Expr:
    """Map a score onto healthy / neutral / at_risk (null when there is no score)."""
    seg = cfg.scoring.segments
    return (
        pl.when(score.is_null())
        .then(pl.lit(None, pl.String))
        .when(score >= seg.healthy)
        .then(pl.lit("healthy"))
        .when(score < seg.at_risk)
        .then(pl.lit("at_risk"))
        .otherwise(pl.lit("neutral"))
    )


def score_accounts(features: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Score every account with its tier's model (or the main one) and explain the score."""
    tiers = cfg.scoring.tiers
    if not tiers or "tier" not in features.columns:
        return _score_model(features, cfg).with_columns(pl.lit("default").alias("model"))
    own_model = pl.col("tier").is_in(list(tiers)).fill_null(False)
    parts = [
        _score_model(features.filter(~own_model), cfg).with_columns(
            pl.lit("default").alias("model")
        )
    ]
    for tier in tiers:
        tier_cfg = cfg.model_copy(update={"scoring": cfg.scoring.for_tier(tier)})
        part = _score_model(features.filter(pl.col("tier") == tier), tier_cfg)
        parts.append(part.with_columns(pl.lit(f"tier:{tier}").alias("model")))
    return pl.concat(parts, how="diagonal_relaxed").sort("account_id")


def _score_model(features: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    df = effective_weights(measure_scores(features, cfg), cfg)
    enough = pl.col("coverage") >= cfg.scoring.min_coverage - 1e-9
    df = df.with_columns(
        pl.when(enough).then(pl.col("_raw_score")).alias("score"),
        (~enough).alias("insufficient_data"),
    ).with_columns(segment_of(pl.col("score"), cfg).alias("segment"))
    names = [m.name for m in cfg.scoring.measures]
    df = df.with_columns(
        *[
            (pl.col(f"e_{n}") * (100 - pl.col(f"m_{n}"))).fill_null(0.0).alias(f"lost_{n}")
            for n in names
        ],
        *[(pl.col(f"e_{n}") * pl.col(f"m_{n}")).fill_null(0.0).alias(f"c_{n}") for n in names],
    )
    return df.with_columns(top_drivers(df, names, cfg.scoring.top_drivers)).drop("_raw_score")


def _long(wide: pl.DataFrame, index: list[str], names: list[str], value: str) -> pl.DataFrame:
    """Unpivot the measure columns ``names`` of ``wide``: a row per account and measure.

    Accounts and measures become integer codes (``_r`` the account's row in ``wide``, ``_m``
    the measure's place in alphabetical order), so ranking sorts numbers, not strings.
    """
    order = {n: i for i, n in enumerate(sorted(names))}
    return (
        wide.select(*index, *names)
        .with_row_index("_r")
        .unpivot(index=["_r", *index], variable_name="measure", value_name=value)
        .with_columns(pl.col("measure").replace_strict(order, return_dtype=pl.UInt32).alias("_m"))
    )


def _ranked_text(
    long: pl.DataFrame, rank: pl.Expr, text: pl.Expr, k: int, name: str, height: int
) -> pl.Series:
    """Join each account's ``k`` highest-ranked rows (ties by measure name) into one text.

    ``long`` comes from ``_long``; the result has one value per row of the wide frame
    (``height`` rows; null for an account with no row).
    """
    texts = (
        long.sort(["_r", rank, "_m"], descending=[False, True, False])
        .group_by("_r", maintain_order=True)
        .head(k)
        .group_by("_r", maintain_order=True)
        .agg(text.str.join("; ").alias(name))
    )
    rows = pl.DataFrame({"_r": pl.arange(0, height, dtype=pl.UInt32, eager=True)})
    return rows.join(texts, on="_r", how="left", maintain_order="left")[name]


def top_drivers(df: pl.DataFrame, names: list[str], k: int) -> pl.Series:
    """Name the ``k`` measures that cost the most points, e.g. ``nps_account (-6.2)``."""
    wide = df.select("score", *[pl.col(f"lost_{n}").alias(n) for n in names])
    long = _long(wide, ["score"], names, "lost").filter(
        pl.col("score").is_not_null() & (pl.col("lost") >= 0.05)
    )
    text = pl.format("{} (-{})", "measure", pl.col("lost").round(1))
    return _ranked_text(long, pl.col("lost"), text, k, "top_drivers", df.height)


def add_trends(
    scores: pl.DataFrame, prev_1w: pl.DataFrame | None, prev_4w: pl.DataFrame | None, cfg: Config
) -> pl.DataFrame:
    """Add week-over-week and 4-week deltas, the drop alert and what changed most."""
    names = [m.name for m in cfg.scoring.measures]
    out = scores
    for label, prev in (("1w", prev_1w), ("4w", prev_4w)):
        if prev is None or prev.is_empty():
            out = out.with_columns(pl.lit(None, pl.Float64).alias(f"score_delta_{label}"))
            continue
        # compare computed scores: a manual override must not show up as a change in health
        prev_col = "computed_score" if "computed_score" in prev.columns else "score"
        p = prev.select("account_id", pl.col(prev_col).alias("_prev"))
        out = (
            out.join(p, on="account_id", how="left")
            .with_columns((pl.col("score") - pl.col("_prev")).alias(f"score_delta_{label}"))
            .drop("_prev")
        )
    out = out.with_columns(
        (pl.col("score_delta_1w") <= -cfg.scoring.drop_alert).fill_null(False).alias("drop_alert")
    )
    return out.with_columns(change_drivers(out, prev_1w, names))


def change_drivers(
    scores: pl.DataFrame, prev: pl.DataFrame | None, names: list[str], k: int = 3
) -> pl.Series:
    """Name the measures whose contribution changed the score most since last week."""
    if prev is None or prev.is_empty() or not all(f"c_{n}" in prev.columns for n in names):
        return pl.Series("change_drivers", [None] * scores.height, dtype=pl.String)
    cur = scores.select("account_id", "score_delta_1w", *[f"c_{n}" for n in names])
    old = prev.select("account_id", *[pl.col(f"c_{n}").alias(f"o_{n}") for n in names])
    d = cur.join(old, on="account_id", how="left", maintain_order="left").select(
        "score_delta_1w", *[(pl.col(f"c_{n}") - pl.col(f"o_{n}")).alias(n) for n in names]
    )
    long = _long(d, ["score_delta_1w"], names, "delta").filter(
        pl.col("score_delta_1w").is_not_null() & (pl.col("delta").abs() >= 0.05)
    )
    sign = pl.when(pl.col("delta") > 0).then(pl.lit("+")).otherwise(pl.lit(""))
    text = pl.format("{} ({}{})", "measure", sign, pl.col("delta").round(1))
    return _ranked_text(long, pl.col("delta").abs(), text, k, "change_drivers", scores.height)
