"""The parameters of the weekly and backfill flows, each as one pydantic model.

A deployment, the command line and the tests all pass one of these; Prefect validates it
before the flow starts and the UI shows each field with its description.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RunOptions(BaseModel):
    """What every run of a flow needs: the config, whether to send, and how to spread the work."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config_path: str = Field(
        default_factory=lambda: os.environ.get("CHS_CONFIG", "chs.toml"),
        description="TOML config file of the pipeline (default: $CHS_CONFIG, else chs.toml)",
    )
    send: bool = Field(False, description="deliver the e-mails over SMTP after the run")
    partitions: int = Field(
        1,
        ge=1,
        le=1024,
        description="compute features in this many account partitions, as separate tasks",
    )
    run_time: datetime | None = Field(
        None,
        description=(
            "the run's wall-clock time as naive UTC (default: now, from a UTC clock); rows "
            "after it are impossible and quarantined. Set it to replay a run exactly"
        ),
    )
    dask_address: str | None = Field(
        None,
        description=(
            "Dask scheduler that runs the partitions, e.g. tcp://10.0.0.5:8786; "
            "without one a local Dask cluster is started (only when partitions > 1)"
        ),
    )


class WeeklyParams(RunOptions):
    """Parameters of the weekly flow."""

    as_of: date | None = Field(
        None, description="score as of this date (default: the run time's date in UTC)"
    )
    pages: Literal["listed", "all"] = Field(
        "listed",
        description=(
            "write accounts/<account_id>.html for the accounts at risk or with an open action "
            "('listed') or for every scored account ('all')"
        ),
    )


class BackfillParams(RunOptions):
    """Parameters of the backfill flow: the dates from start to end, every ``every_days``."""

    start: date = Field(description="first as-of date")
    end: date = Field(description="last as-of date (on or after start)")
    every_days: int = Field(7, ge=1, le=366, description="days between two as-of dates")
    emails: Literal["last", "all"] = Field(
        "last",
        description=(
            "build the e-mails of every date ('all') or only of the last; every date gets its "
            "files, report and history either way (with send: all)"
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> BackfillParams:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self
