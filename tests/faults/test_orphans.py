"""The session-end check of tests/conftest.py fails a session that leaves a process running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import command_line, survivors

LEAKY = """
import subprocess, sys

def test_leaves_a_child() -> None:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # leaked-child"])

def test_leaves_an_orphan() -> None:
    # the shell exits at once: its background sleep is handed to init, no child of pytest
    subprocess.run(["sh", "-c", "sleep 301 &"], check=True)
"""

TIDY = """
import subprocess, sys

def test_waits_for_its_child() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)
"""


def _session(folder: Path, name: str, body: str) -> subprocess.CompletedProcess[str]:
    test = folder / name
    test.write_text(body)
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-c", "/dev/null"]
    cmd += ["--rootdir", str(folder), "-p", "no:cacheprovider", "-q", str(test)]
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check reads /proc")
def test_a_leaked_child_or_orphan_fails_the_session_and_is_named(tmp_path: Path) -> None:
    leaky = _session(tmp_path, "test_leaky.py", LEAKY)
    out = leaky.stdout + leaky.stderr
    assert leaky.returncode != 0, out
    assert "2 process(es) started by the tests were left running" in out
    assert "leaked-child" in out  # each survivor's command line
    assert "sleep 301" in out
    # the check killed them: nothing of that session is left for ours to find
    assert not [p for p in survivors("no-such-mark") if "leaked-child" in command_line(p)]

    tidy = _session(tmp_path, "test_tidy.py", TIDY)
    assert tidy.returncode == 0, tidy.stdout + tidy.stderr
    assert "left running" not in tidy.stdout
