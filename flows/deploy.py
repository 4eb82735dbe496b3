"""Deployments: the weekly run on its cron schedule and an on-demand backfill."""

from __future__ import annotations

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
        parameters={"config_path": path, "send": True},
        description="Score every account each week and e-mail the report.",
        concurrency_limit=1,
        tags=["customer-health"],
    )
    backfill = backfill_flow.to_deployment(
        name="backfill",
        parameters={"config_path": path, "every_days": 7, "send": False},
        description="Recompute every snapshot between start and end (parameters: start, end).",
        concurrency_limit=1,
        tags=["customer-health"],
    )
    return [weekly, backfill]


def serve(config_path: Path, cron: str | None, timezone: str | None) -> None:
    """Serve both deployments from this process (blocks until interrupted)."""
    prefect_serve(*deployments(config_path, cron, timezone))
