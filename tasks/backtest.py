"""Back-test a scoring config against real churn and learn weights from history.

Every stored snapshot D labels its accounts by whether they churned within the horizon after
it: ``D < churned_at <= D + horizon`` (``accounts.churned_at``). Snapshots whose horizon ends
after the day churn is known up to are left out, because their labels are not in yet. The
risk an account carries is ``-score`` (the model's own score where a CSM override replaced it).

The learned model is a regularised logistic regression on the measure points of history. It
trains only on snapshots whose label window ends before the test period begins, and is
tested, beside the hand-set config, on the latest third of the labelled snapshots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tasks.config import Config, MeasureConfig
from tasks.schemas import DIMENSIONS
from tasks.score import effective_weights

HORIZON_DAYS = 90
TEST_SHARE = 1 / 3
REGULARISATION_C = 0.1  # inverse L2 strength on points scaled to 0-1
MIN_TRAIN_DATES = 3


def own_model(scores: pl.DataFrame) -> pl.DataFrame:
    """Use the model's own score and segment where a CSM override replaced them."""
    if "computed_score" not in scores.columns:
        return scores
    return scores.with_columns(
        pl.coalesce("computed_score", "score").alias("score"),
        pl.coalesce("computed_segment", "segment").alias("segment"),
    )


def labelled(
    scores: pl.DataFrame, accounts: pl.DataFrame, horizon_days: int, known_until: date
) -> pl.DataFrame:
    """Label each snapshot row with ``churned``: whether the account churned in the horizon."""
    horizon = timedelta(days=horizon_days)
    return (
        own_model(scores)
        .filter(pl.col("as_of") + horizon <= known_until)
        .join(accounts.select("account_id", "churned_at"), on="account_id", how="left")
        .filter(pl.col("churned_at").is_null() | (pl.col("churned_at") > pl.col("as_of")))
        .with_columns(
            (pl.col("churned_at") <= pl.col("as_of") + horizon).fill_null(False).alias("churned")
        )
    )


def auc(churned: pl.Series, score: pl.Series) -> float | None:
    """Return the AUC of ``-score`` against churn (None without both outcomes)."""
    keep = score.is_not_null()
    y, s = churned.filter(keep).to_numpy(), score.filter(keep).to_numpy()
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, -s))


def lift_top_decile(rows: pl.DataFrame) -> float | None:
    """Return the churn rate of each snapshot's riskiest tenth over the overall churn rate."""
    scored = rows.filter(pl.col("score").is_not_null())
    base = scored["churned"].mean()
    if not scored.height or not base:
        return None
    rank = pl.int_range(pl.len()).over("as_of", order_by=["score", "account_id"])
    top = scored.filter(rank < (pl.len().over("as_of") / 10).ceil())
    return float(top["churned"].mean()) / float(base)  # type: ignore[arg-type]


def _metrics(rows: pl.DataFrame) -> dict[str, float | None]:
    return {
        "auc": _round(auc(rows["churned"], rows["score"])),
        "lift_top_decile": _round(lift_top_decile(rows)),
    }


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or math.isnan(x) else round(x, digits)


def churn_by_segment(rows: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Return the churn rate within the horizon and the number of rows per segment."""
    agg = (
        rows.with_columns(pl.col("segment").fill_null("insufficient_data"))
        .group_by("segment")
        .agg(pl.col("churned").mean().alias("rate"), pl.len().alias("n"))
    )
    order = ["at_risk", "neutral", "healthy", "insufficient_data"]
    found = {r["segment"]: r for r in agg.iter_rows(named=True)}
    return {
        s: {"churn_rate": _round(found[s]["rate"]), "n": found[s]["n"]} for s in order if s in found
    }


def lead_times(
    scores: pl.DataFrame, accounts: pl.DataFrame, horizon_days: int, known_until: date
) -> dict[str, Any]:
    """How long before churn the account was first flagged at risk within the horizon before it."""
    churners = accounts.filter(
        pl.col("churned_at").is_not_null() & (pl.col("churned_at") <= known_until)
    ).select("account_id", "churned_at")
    before = (
        own_model(scores)
        .select("account_id", "as_of", "segment")
        .join(churners, on="account_id")
        .filter(
            (pl.col("as_of") < pl.col("churned_at"))
            & (pl.col("as_of") >= pl.col("churned_at") - timedelta(days=horizon_days))
        )
    )
    per = before.group_by("account_id").agg(
        (pl.col("churned_at") - pl.col("as_of"))
        .dt.total_days()
        .filter(pl.col("segment") == "at_risk")
        .max()
        .alias("lead")
    )
    leads = per["lead"].drop_nulls()
    return {
        "churned_observed": per.height,
        "flagged": leads.len(),
        "flagged_share": _round(leads.len() / per.height) if per.height else None,
        "median_days": float(leads.median()) if leads.len() else None,  # type: ignore[arg-type]
        "window_days": horizon_days,
    }


def time_split(
    dates: list[date], horizon_days: int, test_share: float = TEST_SHARE
) -> tuple[list[date], list[date]]:
    """Split snapshot dates in time: the latest ``test_share`` of them are the test dates.

    Training dates end one horizon before the test starts, so no training label looks into the
    test period.
    """
    k = max(1, round(len(dates) * test_share))
    test = dates[len(dates) - k :]
    if not test:
        return [], []
    train = [d for d in dates[: len(dates) - k] if d + timedelta(days=horizon_days) < test[0]]
    return train, test


def points_wide(measures: pl.DataFrame) -> pl.DataFrame:
    """Pivot measure points to one row per snapshot and account, one ``m_<measure>`` per measure."""
    wide = measures.select("as_of", "account_id", "measure", "points").pivot(
        on="measure", index=["as_of", "account_id"], values="points"
    )
    return wide.rename({c: f"m_{c}" for c in wide.columns if c not in ("as_of", "account_id")})


def rescore(points: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Score stored measure points with another config's weights (coverage rules included)."""
    names = [f"m_{m.name}" for m in cfg.scoring.measures]
    missing = [pl.lit(None, pl.Float64).alias(c) for c in names if c not in points.columns]
    df = effective_weights(points.with_columns(missing), cfg)
    enough = pl.col("coverage") >= cfg.scoring.min_coverage - 1e-9
    return df.select(
        "as_of", "account_id", pl.when(enough).then(pl.col("_raw_score")).alias("score")
    )


@dataclass
class LearnedWeights:
    """A logistic regression of churn on measure points, read as config weights."""

    weights: dict[str, float]  # measure -> share of the score (sums to 1; 0 = dropped)
    coefficients: dict[str, float]  # per 100 points of the measure
    intercept: float
    fill: dict[str, float]  # training mean used where a measure has no data
    model: LogisticRegression


def _matrix(rows: pl.DataFrame, names: list[str], fill: dict[str, float]) -> np.ndarray:
    return rows.select(
        [(pl.col(f"m_{n}").fill_null(fill[n]) / 100.0).alias(n) for n in names]
    ).to_numpy()


def fit_weights(
    train: pl.DataFrame, names: list[str], c: float = REGULARISATION_C
) -> LearnedWeights | None:
    """Fit churn on measure points; a measure's weight is how much its points lower churn risk."""
    y = train["churned"].to_numpy()
    if len(np.unique(y)) < 2:
        return None
    means = train.select([pl.col(f"m_{n}").mean().alias(n) for n in names]).row(0, named=True)
    fill = {n: 50.0 if v is None else float(v) for n, v in means.items()}
    model = LogisticRegression(C=c, max_iter=5000).fit(_matrix(train, names, fill), y)
    protective = np.clip(-model.coef_[0], 0.0, None)  # more points, less churn
    total = float(protective.sum())
    if total <= 0:
        return None
    return LearnedWeights(
        weights={n: float(w) / total for n, w in zip(names, protective, strict=True)},
        coefficients={n: float(b) for n, b in zip(names, model.coef_[0], strict=True)},
        intercept=float(model.intercept_[0]),
        fill=fill,
        model=model,
    )


def learned_config(cfg: Config, learned: LearnedWeights, digits: int = 3) -> Config:
    """Return the config with the learned weights (rounded as printed; zero weights dropped)."""
    keep = [
        m.model_copy(update={"weight": round(learned.weights[m.name], digits)})
        for m in cfg.scoring.measures
        if round(learned.weights.get(m.name, 0.0), digits) > 0
    ]
    dims = {d: round(sum(m.weight for m in keep if m.dimension == d), digits) for d in DIMENSIONS}
    scoring = cfg.scoring.model_copy(update={"dimensions": dims, "measures": keep, "tiers": {}})
    return cfg.model_copy(update={"scoring": scoring})


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_value(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def config_toml(cfg: Config, note: str) -> str:
    """Write a config's dimensions and measures as a TOML snippet a user can paste."""
    lines = [f"# {line}" for line in note.splitlines()]
    lines += ["[scoring.dimensions]"]
    lines += [f"{d} = {_toml_value(w)}" for d, w in cfg.scoring.dimensions.items()]
    defaults = {k: f.default for k, f in MeasureConfig.model_fields.items()}
    for m in cfg.scoring.measures:
        body = m.model_dump(exclude_none=True)
        keep = {k: v for k, v in body.items() if k in ("name", "dimension") or v != defaults[k]}
        lines += ["", "[[scoring.measures]]"] + [f"{k} = {_toml_value(v)}" for k, v in keep.items()]
    return "\n".join(lines) + "\n"


def _learned_section(
    cfg: Config, rows: pl.DataFrame, points: pl.DataFrame, train: list[date], test: list[date]
) -> dict[str, Any]:
    names = [m.name for m in cfg.scoring.measures if f"m_{m.name}" in points.columns]
    data = rows.select("as_of", "account_id", "churned").join(
        points, on=["as_of", "account_id"], how="inner"
    )
    fit = fit_weights(data.filter(pl.col("as_of").is_in(train)), names)
    if fit is None:
        return {"auc": None, "lift_top_decile": None, "note": "no churn in the training period"}
    new = learned_config(cfg, fit)
    held = data.filter(pl.col("as_of").is_in(test))
    scored = held.join(rescore(points, new), on=["as_of", "account_id"], how="left")
    proba = fit.model.predict_proba(_matrix(held, names, fit.fill))[:, 1]
    note = (
        f"Learned from {len(train)} snapshots {train[0]} to {train[-1]} against churn within "
        f"the horizon; tested on {test[0]} to {test[-1]}."
    )
    return {
        **_metrics(scored),
        "model_auc": _round(auc(held["churned"], pl.Series(-proba))),
        "weights": {n: round(w, 4) for n, w in fit.weights.items()},
        "dimension_weights": new.scoring.dimensions,
        "coefficients": {n: round(b, 4) for n, b in fit.coefficients.items()},
        "regularisation_c": REGULARISATION_C,
        "config_toml": config_toml(new, note),
    }


def backtest(
    scores: pl.DataFrame,
    measures: pl.DataFrame,
    accounts: pl.DataFrame,
    cfg: Config,
    known_until: date,
    horizon_days: int = HORIZON_DAYS,
) -> dict[str, Any]:
    """Back-test stored scores against churn and, when history allows, learn weights."""
    rows = labelled(scores, accounts, horizon_days, known_until)
    dates = sorted(rows["as_of"].unique().to_list())
    report: dict[str, Any] = {
        "horizon_days": horizon_days,
        "known_until": known_until.isoformat(),
        "n_snapshots": len(dates),
        "n_snapshots_stored": scores["as_of"].n_unique(),
        "first_snapshot": dates[0].isoformat() if dates else None,
        "last_snapshot": dates[-1].isoformat() if dates else None,
        "n_observations": rows.height,
        "n_churned": int(rows["churned"].sum()),
        "base_churn_rate": _round(rows["churned"].mean()) if rows.height else None,  # type: ignore[arg-type]
        **_metrics(rows),
        "churn_rate_by_segment": churn_by_segment(rows),
        "lead_time": lead_times(scores, accounts, horizon_days, known_until),
        "by_snapshot": [
            {
                "as_of": d.isoformat(),
                **_metrics(part),
                "n": part.height,
                "churned": int(part["churned"].sum()),
            }
            for (d,), part in sorted(rows.partition_by("as_of", as_dict=True).items())
        ],
    }
    report["median_lead_days"] = report["lead_time"]["median_days"]
    train, test = time_split(dates, horizon_days)
    report["split"] = {
        "train": [train[0].isoformat(), train[-1].isoformat()] if train else None,
        "test": [test[0].isoformat(), test[-1].isoformat()] if test else None,
        "gap_days": horizon_days,
    }
    held = rows.filter(pl.col("as_of").is_in(test))
    report["hand_set_test"] = _metrics(held) if test else {"auc": None, "lift_top_decile": None}
    if len(train) < MIN_TRAIN_DATES:
        report["learned"] = {
            "auc": None,
            "lift_top_decile": None,
            "note": f"needs {MIN_TRAIN_DATES}+ snapshots a horizon before the test period; has {len(train)}",
        }
    else:
        report["learned"] = _learned_section(cfg, rows, points_wide(measures), train, test)
    return report


def format_summary(report: dict[str, Any]) -> str:
    """Describe a back-test in a few lines for the command line."""

    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    seg = report["churn_rate_by_segment"]
    learned = report["learned"]
    lines = [
        f"back-test of {report['n_snapshots']} snapshots ({report['first_snapshot']} to "
        f"{report['last_snapshot']}) against churn within {report['horizon_days']} days:",
        f"  AUC {f(report['auc'])}, lift in the riskiest decile {f(report['lift_top_decile'])}, "
        f"median {f(report['median_lead_days'])} days from the first at-risk flag to churn",
        "  churn rate by segment: "
        + ", ".join(f"{s} {f(v['churn_rate'])} (n={v['n']})" for s, v in seg.items()),
        f"  test period {report['split']['test']}: hand-set AUC {f(report['hand_set_test']['auc'])}, "
        f"learned AUC {f(learned['auc'])} (lift {f(report['hand_set_test']['lift_top_decile'])} "
        f"vs {f(learned['lift_top_decile'])})",
    ]
    if learned.get("config_toml"):
        lines += ["", "Learned weights as a config snippet:", "", learned["config_toml"]]
    elif learned.get("note"):
        lines.append(f"  learned weights: {learned['note']}")
    return "\n".join(lines)
