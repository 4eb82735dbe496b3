"""The history store and the output folder under stress: a damaged DuckDB file, and two
writers of the same dates at once.
"""

from __future__ import annotations

import hashlib
import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.cli.main import main
from tests.conftest import DEMO_END
from tests.faults.conftest import date_state, wait_stopped

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
WEEK = timedelta(days=7)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(config: Path, day: Any = DEMO_END) -> int:
    return main(["run", "--config", str(config), "--as-of", day.isoformat()])


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_history_file_is_one_sentence_and_nothing_is_overwritten(
    damage: str, demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = demo / "chs.toml"
    assert _run(config, DEMO_END - WEEK) == 0
    store = demo / "out" / "history.duckdb"
    raw = store.read_bytes()
    if damage == "truncated":
        store.write_bytes(raw[: len(raw) // 2])
    else:  # a disk error or a stray write over the file's first blocks
        store.write_bytes(os.urandom(8192) + raw[8192:])
    before = _digest(store)
    capsys.readouterr()

    code = _run(config)
    err = capsys.readouterr().err
    assert code in (1, 2)
    lines = [line for line in err.splitlines() if line.startswith("chs: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"chs: error: History store {store} cannot be ")
    assert "Traceback" not in err
    assert _digest(store) == before  # the damaged file is left for a person to look at
    assert not (demo / "out" / DEMO_END.isoformat()).exists()
    assert (demo / "out" / (DEMO_END - WEEK).isoformat() / "scores.parquet").is_file()


FIRST = {
    # the first writer, stopped while it holds the folder: a run in its render step, a
    # backfill in its second date's
    "run": (["run", "--as-of", DEMO_END.isoformat()], "render"),
    "backfill": (
        ["backfill", "--start", (DEMO_END - WEEK).isoformat(), "--end", DEMO_END.isoformat()],
        "render@2",
    ),
}


@pytest.mark.parametrize("first", list(FIRST))
def test_a_second_writer_of_the_same_folder_fails_clearly_and_the_first_completes(
    first: str, demo: Path, chs_started: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = demo / "chs.toml"
    args, stop_at = FIRST[first]
    proc = chs_started(*args, "--config", str(config), env={"CHS_FAULT_AT": f"{stop_at}:stop"})
    wait_stopped(proc)
    capsys.readouterr()
    assert _run(config) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"chs: error: Another chs run or backfill is writing {demo / 'out'} (process {proc.pid}"
    ), err
    assert err.endswith("run this one again once it has finished.")
    os.kill(proc.pid, signal.SIGCONT)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-2000:]
    state = date_state(demo, DEMO_END)
    assert state["history"]["run_history"] == 1  # one complete run of the date
    assert state["history"]["score_history"] == len(state["scores"])
    assert not list((demo / "out").glob(".*staging*"))
    assert _run(config) == 0  # once the first has finished, the second runs
