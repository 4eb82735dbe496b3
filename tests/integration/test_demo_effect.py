"""The demo's planted playbook effect, measured by the pipeline against its hold-out group.

The demo generator (demodata/population.py) makes accounts that dip and come back when the
planted playbook is opened for them, and keep sliding when they are in its hold-out group. A
52-week backfill of the full-size demo must find that effect (a positive recovery difference
whose 95% interval excludes 0) for that playbook only, and hold out about the configured share.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from demodata.folder import make_demo
from demodata.population import PLANTED_PLAYBOOK
from flows.backfill import backfill_flow
from flows.params import BackfillParams
from tests.conftest import DEMO_END


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_demo_shows_its_planted_effect_and_no_other(tmp_path: Path) -> None:
    config = make_demo(tmp_path, 2000, seed=7, end=DEMO_END, events_per_account=2500, out="out")
    start = DEMO_END - timedelta(days=7 * 51)
    backfill_flow(BackfillParams(config_path=str(config), start=start, end=DEMO_END))
    doc = json.loads((tmp_path / "out" / DEMO_END.isoformat() / "effectiveness.json").read_text())
    by = {p["action"]: p for p in doc["playbooks"]}
    planted = by[PLANTED_PLAYBOOK]
    assert not planted["n_too_small"]
    assert planted["recovered_difference"]["low"] > 0  # the interval excludes 0
    # every other playbook measured on enough accounts shows no clear effect
    others = [p for a, p in by.items() if a != PLANTED_PLAYBOOK and not p["n_too_small"]]
    assert others
    for p in others:
        d = p["recovered_difference"]
        assert d["low"] <= 0 <= d["high"], p["action"]

    # the hold-out share of newly qualifying accounts is the setting's, within 2 points
    con = duckdb.connect(str(tmp_path / "out" / "history.duckdb"), read_only=True)
    try:
        ((held, opened),) = con.sql(
            "select count(*) filter (where holdout), count(*) from action_history "
            "where as_of = opened_on"
        ).fetchall()
    finally:
        con.close()
    assert abs(held / opened - doc["holdout_share"]) <= 0.02
