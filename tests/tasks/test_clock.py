"""One UTC clock: a run's results do not depend on the machine's time zone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.clock import utc_now, utc_today

ZONES = ("America/Los_Angeles", "Asia/Tokyo")


def test_utc_now_is_naive_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        for zone in ZONES:
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            local = datetime.now()
            now = utc_now()
            assert now.tzinfo is None
            # the local clock is hours away from UTC in both zones; ours is not
            assert abs((local - now).total_seconds()) > 3600
            assert abs((datetime.now(UTC).replace(tzinfo=None) - now).total_seconds()) < 60
            assert utc_today() == now.date()
    finally:
        monkeypatch.delenv("TZ", raising=False)
        time.tzset()  # the process keeps the zone it last read until told again


def _add_recent_rows(demo: Path, now: datetime) -> None:
    """Add a ticket opened 3 hours and resolved 1 hour before the run, and a fresh NPS answer."""
    con = duckdb.connect(str(demo / "crm.duckdb"))
    try:
        account = con.sql("select account_id from accounts order by account_id limit 1").fetchall()
        row = con.sql("select * from tickets limit 1").pl()
        row = row.with_columns(
            pl.lit("T-RECENT").alias("ticket_id"),
            pl.lit(account[0][0]).alias("account_id"),
            pl.lit(now - timedelta(hours=3)).cast(row.schema["opened_at"]).alias("opened_at"),
            pl.lit(now - timedelta(hours=1)).cast(row.schema["resolved_at"]).alias("resolved_at"),
        )
        con.register("recent", row.to_arrow())
        con.execute("insert into tickets select * from recent")
    finally:
        con.close()
    with (demo / "surveys" / "nps.csv").open("a", encoding="utf-8") as f:
        stamp = (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
        f.write(f"R-RECENT,{account[0][0]},nps,9,{stamp},{account[0][0]}-U001,fresh answer\n")


def _run_in_zone(demo: Path, zone: str) -> Path:
    env = {**os.environ, "TZ": zone}
    env.pop("PREFECT_API_URL", None)  # each run starts its own temporary API
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--config", str(demo / "chs.toml"), "--no-send"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (folder,) = [p for p in (demo / "out").iterdir() if p.is_dir() and p.name[0].isdigit()]
    return folder


@pytest.mark.slow
def test_weekly_run_is_identical_in_every_time_zone(demo_template: Path, tmp_path: Path) -> None:
    # the real time in UTC, read here and not from the clock under test
    now = datetime.now(UTC).replace(tzinfo=None)
    outs = {}
    for zone in ZONES:
        demo = tmp_path / zone.replace("/", "-")
        shutil.copytree(demo_template, demo)
        _add_recent_rows(demo, now)
        outs[zone] = _run_in_zone(demo, zone)
    la, tokyo = (outs[z] for z in ZONES)
    # the run is as of today in UTC in both zones, not the local date (which differs)
    assert la.name == tokyo.name
    assert la.name in {now.date().isoformat(), datetime.now(UTC).date().isoformat()}
    validation = json.loads((la / "validation.json").read_text())
    # the rows of an hour ago are real, not "after the run time": nothing is quarantined for it
    assert validation["datasets"]["tickets"]["rows_quarantined"] == 0
    assert validation == json.loads((tokyo / "validation.json").read_text())
    assert json.loads((la / "kpis.json").read_text()) == json.loads(
        (tokyo / "kpis.json").read_text()
    )
    assert_frame_equal(
        pl.read_parquet(la / "scores.parquet"), pl.read_parquet(tokyo / "scores.parquet")
    )
    assert (la / "actions.csv").read_bytes() == (tokyo / "actions.csv").read_bytes()
