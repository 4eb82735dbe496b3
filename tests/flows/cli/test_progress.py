"""Progress a person can follow: a live line on a terminal, a short log elsewhere; Prefect's
per-task lines only with --verbose; ``chs --version``; help on every option.
"""

from __future__ import annotations

import argparse
import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import pytest

from flows.cli.parser import parser
from flows.progress import LineReporter, for_stream
from tests.conftest import DEMO_END

CHS = [sys.executable, "-m", "flows.cli"]
ROOT = Path(__file__).resolve().parents[3]
START = DEMO_END - timedelta(weeks=13)  # 14 weekly dates


def _env() -> dict[str, str]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("CHS_SMTP_HOST", None)
    return env


def _backfill(demo: Path, start: object = START, *extra: str) -> list[str]:
    args = ["backfill", "--config", str(demo / "chs.toml"), "--start", str(start)]
    return [*args, "--end", DEMO_END.isoformat(), *extra]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run chs with stdout and stderr into one pipe, as `chs ... > file 2>&1`."""
    return subprocess.run(
        [*CHS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_a_backfill_into_a_pipe_is_a_short_log(demo: Path) -> None:
    p = _run(_backfill(demo))
    assert p.returncode == 0, p.stdout
    lines = p.stdout.splitlines()
    assert len(lines) < 60, p.stdout
    assert "Finished in state" not in p.stdout
    dates = [ln for ln in lines if re.match(r"backfill \d+/14: \d{4}-\d\d-\d\d done \(", ln)]
    assert len(dates) == 14, p.stdout
    assert "left)" in dates[0]  # rate and time left on each date's line
    assert any(ln.startswith("extract done") for ln in lines)  # one line per stage before
    assert "backfilled 14 dates" in p.stdout
    assert "\x1b[" not in p.stdout  # no terminal control codes in a file


@pytest.mark.slow
def test_verbose_brings_back_prefects_lines(demo: Path) -> None:
    start = DEMO_END - timedelta(weeks=1)
    p = _run(_backfill(demo, start, "--verbose"))
    assert p.returncode == 0, p.stdout
    assert p.stdout.count("Finished in state Completed()") > 10


def _read_pty(fd: int, proc: subprocess.Popen[bytes], limit: float) -> bytes:
    out = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


@pytest.mark.slow
def test_a_backfill_on_a_terminal_shows_a_live_progress_line(demo: Path) -> None:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [*CHS, *_backfill(demo)],
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=ROOT,
        env={**_env(), "TERM": "xterm-256color", "COLUMNS": "140"},
    )
    os.close(child)
    try:
        out = _read_pty(main, proc, 600).decode("utf-8", errors="replace")
        assert proc.wait(timeout=60) == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    assert "\r" in out or "\x1b[2K" in out  # the line is redrawn in place
    assert "━" in out  # the bar
    assert "ETA" in out
    for done in ("1/14", "7/14", "14/14"):
        assert done in out, done
    assert re.search(r"\d+\.\d/(s|min)", out)  # the rate
    assert "Finished in state" not in out


def test_reporter_follows_the_stream() -> None:
    assert isinstance(for_stream(io.StringIO()), LineReporter)
    shown = io.StringIO()
    r = LineReporter(shown)
    r.stage("extract")
    r.start("backfill", 2)
    r.stage("score")  # inside a count: the date's line says it
    assert r.repeated("calibrate") is False
    assert r.repeated("calibrate") is True
    r.advance("2026-11-09")
    r.advance("2026-11-16")
    r.stage("backtest")
    lines = shown.getvalue().splitlines()
    assert lines[0].startswith("extract done (")
    assert lines[1].startswith("backfill 1/2: 2026-11-09 done (")
    assert lines[2].startswith("backfill 2/2: 2026-11-16 done (")
    assert lines[3] == "calibrate: 1 more warnings like the one above (--verbose shows each)"
    assert lines[4].startswith("backtest done (")
    assert len(lines) == 5


def test_version_comes_from_the_package_metadata() -> None:
    p = _run(["--version"])
    assert p.returncode == 0
    assert p.stdout.strip() == f"chs {metadata.version('customer-health-score')}"


def _walk(ap: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, ap)]
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _walk(sub, f"{path} {name}")
    return found


def test_every_option_of_every_command_has_help() -> None:
    missing = []
    commands = _walk(parser(), "chs")
    assert len(commands) >= 12  # chs, its commands and `actions export`
    for path, ap in commands:
        for action in ap._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_verbose_goes_before_or_after_the_command() -> None:
    assert parser().parse_args(["--verbose", "run"]).verbose is True
    assert parser().parse_args(["run", "--verbose"]).verbose is True
    assert parser().parse_args(["run"]).verbose is False
