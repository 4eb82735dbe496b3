"""Write one as-of date's files (SPEC section 6) atomically into ``<out>/<D>/``.

Everything is written into a staging folder beside the target and swapped in with renames,
so a re-run replaces the date whole and a crash never leaves half a result.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.csvfile import write_csv
from tasks.kpis import Kpis
from tasks.mail.outbox import carry_sent
from tasks.schemas import ACTION_COLUMNS, ACTIONS_CSV_COLUMNS, DIMENSIONS
from tasks.validate import ValidatedDataset

BASE_COLUMNS = (
    "account_id",
    "as_of",
    "name",
    "csm_email",
    "tier",
    "arr",
    "renewal_date",
    "score",
    "segment",
    "coverage",
    "insufficient_data",
    "score_delta_1w",
    "score_delta_4w",
    "drop_alert",
    *DIMENSIONS,
    "top_drivers",
    "change_drivers",
    "model",
    "computed_score",
    "computed_segment",
    "override_reason",
    "override_expires",
    "override_author",
    "p_churn_90d",
    "expected_arr_at_risk",
    "crm_id",  # when accounts carry it: the record `chs writeback` updates
)


def scores_table(scored: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Select the published columns: base, dimensions, then value and points of each measure."""
    cols = [pl.col(c) for c in BASE_COLUMNS if c in scored.columns]
    for m in cfg.scoring.measures:
        value = pl.col(m.source) if m.source in scored.columns else pl.lit(None)
        cols += [value.alias(f"value_{m.name}"), pl.col(f"m_{m.name}").alias(f"points_{m.name}")]
    return scored.select(cols).sort("account_id")


def listed_actions(actions: pl.DataFrame) -> pl.DataFrame:
    """Select the columns of actions.csv (and of the workbook's Actions sheet)."""
    lifecycle = set(ACTIONS_CSV_COLUMNS) <= set(actions.columns)
    return actions.select(ACTIONS_CSV_COLUMNS if lifecycle else ACTION_COLUMNS)


def validation_json(validated: dict[str, ValidatedDataset]) -> dict[str, Any]:
    """Return the validation.json document."""
    return {"datasets": {name: v.summary() for name, v in validated.items()}}


def _write_quarantine(validated: dict[str, ValidatedDataset], folder: Path, bom: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, v in validated.items():
        q = v.quarantined
        if q.height:
            first = ["source_row", "reason"]
            write_csv(
                q.select(first + [c for c in q.columns if c not in first]),
                folder / f"{name}.csv",
                bom,
            )


def stage_outputs(
    out_dir: Path,
    as_of: date,
    scores: pl.DataFrame,
    actions: pl.DataFrame,
    kpis: Kpis,
    validated: dict[str, ValidatedDataset],
    bom: bool = True,
) -> Path:
    """Write the date's data files into a fresh staging folder and return it.

    CSVs go through ``tasks.csvfile`` (``bom``: ``[output] csv_bom``). The report, the outbox
    and ``at_risk.xlsx`` are added to the folder by their own steps.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f".{as_of.isoformat()}.staging-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    scores.write_parquet(stage / "scores.parquet")
    write_csv(scores, stage / "scores.csv", bom)
    write_csv(listed_actions(actions), stage / "actions.csv", bom)
    (stage / "kpis.json").write_text(json.dumps(kpis, indent=2, ensure_ascii=False))
    (stage / "validation.json").write_text(json.dumps(validation_json(validated), indent=2))
    _write_quarantine(validated, stage / "quarantine", bom)
    (stage / "outbox").mkdir()
    return stage


def publish(stage: Path, out_dir: Path, as_of: date) -> Path:
    """Swap the staging folder in as ``<out>/<D>``; the old version is removed only after.

    What the old version's outbox already delivered stays delivered: a re-run of the date (after
    a run killed while sending, say) does not e-mail the same recipient twice.
    """
    target = out_dir / as_of.isoformat()
    carry_sent(target / "outbox", stage / "outbox")
    old = out_dir / f".{as_of.isoformat()}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        target.rename(old)
    stage.rename(target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return target
