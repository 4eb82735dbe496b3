"""The deployments carry the config's schedule, parameters and a concurrency limit of one."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.deploy import deployments
from tasks.errors import ConfigError


def test_weekly_and_backfill_deployments(demo: Path) -> None:
    config = demo / "chs.toml"
    config.write_text(
        config.read_text() + '\n[schedule]\ncron = "30 5 * * 1"\ntimezone = "Europe/Berlin"\n'
    )
    weekly, backfill = deployments(config)
    assert weekly.name == "weekly"
    assert backfill.name == "backfill"
    sched = weekly.schedules[0].schedule
    assert (sched.cron, sched.timezone) == ("30 5 * * 1", "Europe/Berlin")
    assert weekly.parameters == {"params": {"config_path": str(config.resolve()), "send": True}}
    assert backfill.parameters == {}  # start and end are given when it is run
    assert not backfill.schedules
    assert weekly.concurrency_limit == 1


def test_broken_config_fails_at_serve_time(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        deployments(tmp_path / "missing.toml")
