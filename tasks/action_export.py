"""``chs actions export``: the open actions of a date as a CSV a CSM edits and feeds back.

The file's first columns are those of the ``action_updates`` dataset; pointing
``[sources.action_updates]`` at the edited file closes the loop. ``updated_at`` is filled in
as the start of the day after the exported date, so any later run applies the edits and a
re-run of the exported date does not (a CSM may write the real time instead).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl

from tasks.config import Config
from tasks.csvfile import read_own_csv, write_csv
from tasks.errors import ConfigError

EXPORTED = ("open", "in_progress", "snoozed")
EXPORT_COLUMNS = (
    "action_id",
    "status",
    "updated_at",
    "author",
    "note",
    "snooze_until",
    "account_id",
    "action",
    "reason",
    "owner",
    "priority",
    "due_date",
    "opened_on",
    "overdue",
)


def latest_date(cfg: Config) -> date:
    """Return the latest as-of date with an actions.csv in the output folder."""
    days = sorted(p.parent.name for p in cfg.out_dir.glob("????-??-??/actions.csv") if p.is_file())
    if not days:
        raise ConfigError(f"There is no actions.csv under {cfg.out_dir}; run `chs run` first.")
    return date.fromisoformat(days[-1])


def export_frame(actions: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Return the editable export of one date's actions.csv."""
    if "action_id" not in actions.columns:
        raise ConfigError(f"actions.csv of {as_of} has no action_id column (written before 10.1).")
    at = datetime.combine(as_of + timedelta(days=1), time.min)
    return (
        actions.filter(pl.col("status").is_in(EXPORTED))
        .with_columns(
            pl.lit(at.isoformat()).alias("updated_at"),
            pl.lit(None, pl.String).alias("author"),
            pl.lit(None, pl.String).alias("note"),
            pl.lit(None, pl.String).alias("snooze_until"),
        )
        .select(EXPORT_COLUMNS)
    )


def export_actions(cfg: Config, as_of: date | None, out: Path | None) -> tuple[Path, int]:
    """Write the export of ``as_of`` (default: the latest run) and return its path and rows."""
    day = as_of or latest_date(cfg)
    source = cfg.out_dir / day.isoformat() / "actions.csv"
    if not source.is_file():
        raise ConfigError(f"{source} does not exist; run `chs run --as-of {day}` first.")
    frame = export_frame(read_own_csv(source), day)
    target = out or cfg.out_dir / f"action-updates-{day.isoformat()}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_csv(frame, target, cfg.output.csv_bom)
    return target, frame.height
