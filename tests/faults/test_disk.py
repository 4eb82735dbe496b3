"""The output folder's disk fills up mid-run: one sentence naming the folder, the previous
date's results intact, and a run once there is room again completes.

The folder is a small tmpfs mounted for the test (we run as root in CI); where mounting is
not permitted the test skips and says why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from flows.cli.main import main
from tests.conftest import DEMO_END
from tests.faults.conftest import date_state

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
BEFORE = DEMO_END - timedelta(days=7)


@pytest.fixture
def small_disk(demo: Path) -> Iterator[Path]:
    """Mount a 16 MiB tmpfs as the demo's out/ folder; unmount it after."""
    out = demo / "out"
    out.mkdir(exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip() or mount.returncode}")
    try:
        yield out
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Write a file that takes all the space of the folder's disk but ``leave`` bytes."""
    filler = folder / "filler.bin"
    st = os.statvfs(folder)
    filler.write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))
    return filler


def test_a_full_disk_is_one_sentence_and_the_previous_date_is_intact(
    demo: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(demo / "chs.toml")
    assert main(["run", "--config", config, "--as-of", BEFORE.isoformat()]) == 0
    previous = date_state(demo, BEFORE)
    filler = _fill(small_disk, leave=256 * 1024)  # room to start the run, not to finish it
    capsys.readouterr()

    code = main(["run", "--config", config, "--as-of", DEMO_END.isoformat()])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("chs: ")]
    assert lines == [
        f"chs: error: The disk holding {small_disk} is full, so this run stopped; the dates "
        "it had not finished are as they were. Free some space and run it again."
    ], err
    assert not (small_disk / DEMO_END.isoformat()).exists()
    assert not list(small_disk.glob(".*staging*"))
    assert date_state(demo, BEFORE) == previous

    filler.unlink()
    assert main(["run", "--config", config, "--as-of", DEMO_END.isoformat()]) == 0
    assert date_state(demo, BEFORE) == previous
    assert date_state(demo, DEMO_END)["history"]["run_history"] == 1
