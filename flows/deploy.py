"""Deployments: serve the weekly flow on its cron schedule."""

from __future__ import annotations

from pathlib import Path

from prefect.schedules import Cron

from flows.weekly import weekly_flow
from tasks.config import load_config


def serve(config_path: Path, cron: str, timezone: str) -> None:
    """Serve the weekly deployment (blocks until interrupted)."""
    load_config(config_path)  # fail now, not at 6 a.m. on Monday
    weekly_flow.serve(
        name="weekly",
        schedule=Cron(cron, timezone=timezone),
        parameters={"config_path": str(config_path.resolve()), "send": True},
        description="Score every account each week and e-mail the report.",
    )
