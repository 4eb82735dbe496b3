"""SIGKILL of `chs run` at each stage, and of `chs backfill` mid-date.

Each case kills a real `chs` process at a named point (``CHS_FAULT_AT``), checks that no date
is half-written in the files or in history, runs again and compares with a clean run; the
SMTP server on loopback counts what each recipient received.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.backfill import backfill_flow
from flows.params import BackfillParams, WeeklyParams
from flows.weekly import weekly_flow
from tests.conftest import DEMO_END
from tests.faults.conftest import Smtp, assert_whole_or_absent, date_state, killed

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BACKFILL = [DEMO_END - timedelta(days=7 * k) for k in (3, 2, 1, 0)]


def _run(folder: Path, send: bool = True) -> Any:
    return weekly_flow(
        WeeklyParams(config_path=str(folder / "chs.toml"), as_of=DEMO_END, send=send)
    )


@pytest.fixture(scope="module")
def clean(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted run of DEMO_END (nothing sent: no server is configured)."""
    folder = tmp_path_factory.mktemp("clean") / "demo"
    shutil.copytree(demo_template, folder)
    _run(folder, send=False)
    return date_state(folder, DEMO_END)


# stage -> does history hold the date after the kill, are the files published
STAGES = {
    "after-extract": (False, False),
    "validate": (False, False),
    "render": (False, False),
    "store": (False, False),  # inside the history transaction, half the tables written
    "publish": (True, False),  # history committed, the files not yet swapped in
    "deliver": (True, True),  # the first e-mail accepted and recorded
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_at_a_stage_then_a_rerun_equals_a_clean_run(
    stage: str, demo: Path, smtp: Smtp, chs: Any, clean: dict[str, Any]
) -> None:
    config = str(demo / "chs.toml")
    args = ("run", "--config", config, "--as-of", DEMO_END.isoformat(), "--send")
    proc = chs(*args, env={**smtp.env, "CHS_FAULT_AT": stage})
    assert killed(proc), proc.stderr[-2000:]
    in_history, published = STAGES[stage]
    assert_whole_or_absent(demo, DEMO_END, clean)
    after_kill = date_state(demo, DEMO_END)
    assert bool(after_kill["history"].get("run_history")) is in_history
    assert (after_kill["files"] is not None) is published
    assert len(smtp.handler.received) == (1 if stage == "deliver" else 0)

    result = _run(demo)  # the next run, as the scheduler would start it
    assert result.pending == 0
    again = date_state(demo, DEMO_END)
    assert again == clean
    assert not list((demo / "out").glob(".*staging*"))  # what the killed run staged is gone
    # every recipient got the date's e-mail exactly once, over both runs
    counts = smtp.per_recipient()
    assert sum(counts.values()) == len(clean["outbox"])
    assert set(counts.values()) == {1}


def _backfill(folder: Path) -> Any:
    return backfill_flow(
        BackfillParams(
            config_path=str(folder / "chs.toml"), start=BACKFILL[0], end=BACKFILL[-1], every_days=7
        )
    )


def test_sigkill_of_a_backfill_mid_date_then_a_rerun_equals_a_clean_backfill(
    demo: Path, demo_template: Path, tmp_path: Path, chs: Any
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(demo_template, reference)
    _backfill(reference)

    config = str(demo / "chs.toml")
    span = ("--start", BACKFILL[0].isoformat(), "--end", BACKFILL[-1].isoformat())
    # the third date's history transaction, half its tables written
    proc = chs("backfill", "--config", config, *span, env={"CHS_FAULT_AT": "store@3"})
    assert killed(proc), proc.stderr[-2000:]
    reference_state = {day: date_state(reference, day) for day in BACKFILL}
    for day in BACKFILL:
        assert_whole_or_absent(demo, day, reference_state[day])
    written: list[date] = [d for d in BACKFILL if date_state(demo, d)["history"].get("run_history")]
    assert written == BACKFILL[:2]  # the dates before the killed one are complete

    _backfill(demo)
    for day in BACKFILL:
        assert date_state(demo, day) == reference_state[day], day
