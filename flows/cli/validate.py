"""``chs validate``: read and validate every source without scoring or writing anything."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from tasks.clock import utc_now
from tasks.config import load_config
from tasks.errors import ChsError
from tasks.schemas import DATASETS
from tasks.sources.plan import Window
from tasks.sources.read import extract_dataset
from tasks.validate import gate, validate_dataset


def validate_sources(
    config_path: Path, as_of: date | None
) -> tuple[dict[str, Any], ChsError | None]:
    """Validate each configured dataset; return the summaries and the first gate failure."""
    cfg = load_config(config_path)
    run_time = utc_now()
    window = Window(as_of or run_time.date(), run_time)
    report: dict[str, Any] = {}
    ids: list[str] | None = None
    failure: ChsError | None = None
    for name in DATASETS:
        if name not in cfg.sources:
            continue
        v = validate_dataset(
            extract_dataset(name, cfg, window), name, cfg, run_time, account_ids=ids
        )
        report[name] = v.summary()
        if name == "accounts":
            ids = v.accepted["account_id"].to_list()
        try:
            gate(v, cfg)
        except ChsError as err:
            failure = failure or err
            if name == "accounts":
                break
    return report, failure
