"""Deployments: the weekly run on its cron schedule and an on-demand backfill."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import serve as prefect_serve
from prefect.schedules import Cron

from flows.backfill import backfill_flow
from flows.weekly import weekly_flow
from tasks.config import load_config


def deployments(config_path: Path, cron: str | None = None, timezone: str | None = None) -> list:  # type: ignore[type-arg]
    """Build the weekly (scheduled) and backfill (on demand) deployments for one config."""
    cfg = load_config(config_path)  # fail now, not at 6 a.m. on Monday
    path = str(config_path.resolve())
    weekly = weekly_flow.to_deployment(
        name="weekly",
        schedule=Cron(cron or cfg.schedule.cron, timezone=timezone or cfg.schedule.timezone),
        parameters={"params": {"config_path": path, "send": True}},
        description="Score every account each week and e-mail the report.",
        concurrency_limit=1,
        tags=["customer-health"],
    )
    backfill = backfill_flow.to_deployment(
        name="backfill",
        parameters={},  # params.start and params.end are given when it is run
        description="Recompute every snapshot between params.start and params.end.",
        concurrency_limit=1,
        tags=["customer-health"],
    )
    return [weekly, backfill]


def serve(config_path: Path, cron: str | None, timezone: str | None) -> None:
    """Serve both deployments from this process (blocks until interrupted)."""
    served = deployments(config_path, cron, timezone)
    # runs triggered with their own params (which replace the deployment's) use this config
    os.environ["CHS_CONFIG"] = str(config_path.resolve())
    prefect_serve(*served)
