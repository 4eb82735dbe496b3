"""What the fault-injection cases share: a `chs` process to kill, a real SMTP server on
loopback, and the state a run leaves behind (files and history) to compare with a clean run.

The `chs` processes use the session's Prefect harness (its API URL is passed down), so each
starts no server of its own. ``CHS_FAULT_AT`` (tasks/faults.py) names where one kills itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from aiosmtpd.controller import Controller

from tests.tasks.mail.test_deliver import Handler, free_port

ROOT = Path(__file__).resolve().parents[2]
# the files every published date holds (SPEC section 6)
DATE_FILES = {
    "scores.parquet",
    "scores.csv",
    "actions.csv",
    "kpis.json",
    "validation.json",
    "report.html",
    "effectiveness.json",
    "scores_rollup.parquet",
    "scores_rollup.csv",
}


@dataclass
class Smtp:
    """A real SMTP server on loopback and the environment that points `chs` at it."""

    handler: Handler
    port: int

    @property
    def env(self) -> dict[str, str]:
        return {
            "CHS_SMTP_HOST": "127.0.0.1",
            "CHS_SMTP_PORT": str(self.port),
            "CHS_SMTP_SECURITY": "none",
            "CHS_MAIL_FROM": "chs@example.com",
        }

    def per_recipient(self) -> Counter[tuple[str, ...]]:
        """How many messages each recipient list received."""
        return Counter(tuple(sorted(m.rcpt_tos)) for m in self.handler.received)


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Smtp]:
    """Start an SMTP server that accepts everything; point this process's CHS_SMTP_* at it."""
    server = Smtp(Handler(), free_port())
    ctl = Controller(server.handler, hostname="127.0.0.1", port=server.port)
    ctl.start()
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    try:
        yield server
    finally:
        ctl.stop()


@pytest.fixture
def chs(prefect_harness: None) -> Any:
    """Return ``chs(*args, env=...)``: run the command line in a new process, wait, return it."""
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value())

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "PREFECT_API_URL": api, **(env or {})}
        cmd = [sys.executable, "-m", "flows.cli", *args]
        return subprocess.run(
            cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=240, check=False
        )

    return run


@pytest.fixture
def chs_started(prefect_harness: None) -> Iterator[Any]:
    """Return ``start(*args, env=...)``: start the command line in a new process (not waited
    for); any still running at the end is killed.
    """
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value())
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        full = {**os.environ, "PREFECT_API_URL": api, **(env or {})}
        cmd = [sys.executable, "-m", "flows.cli", *args]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full, text=True, stderr=subprocess.PIPE)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_stopped(proc: subprocess.Popen[str], seconds: float = 200) -> None:
    """Wait until the process has stopped itself (``CHS_FAULT_AT=<stage>:stop``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process exited with {proc.returncode} before its stop")
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.1)
    raise AssertionError("the process did not reach its stop point")


def killed(proc: subprocess.CompletedProcess[str]) -> bool:
    """Return whether the process died by SIGKILL."""
    return proc.returncode == -signal.SIGKILL


def history_rows(folder: Path, day: date) -> dict[str, int]:
    """Count the history rows of one date, per table, in the demo's DuckDB store."""
    path = folder / "out" / "history.duckdb"
    if not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()
        ]
        return {
            t: con.execute(f"select count(*) from {t} where as_of = ?", [day]).fetchall()[0][0]
            for t in tables
            if "as_of" in [c[0] for c in con.execute(f"describe {t}").fetchall()]
        }
    finally:
        con.close()


def _rounded(value: Any) -> Any:
    """Round floats to 9 places: Polars' parallel sums may differ in the last bit run to run."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def date_state(folder: Path, day: date) -> dict[str, Any]:
    """What a run of ``day`` left: its files' content and its history rows, to compare."""
    out = folder / "out" / day.isoformat()
    if not out.exists():
        return {"files": None, "history": history_rows(folder, day)}
    scores = pl.read_parquet(out / "scores.parquet")
    return {
        "files": sorted(p.name for p in out.iterdir() if p.is_file()),
        "scores": _rounded(scores.drop("as_of").to_dicts()),
        "actions": (out / "actions.csv").read_text(),
        "kpis": _rounded(json.loads((out / "kpis.json").read_text())),
        "validation": json.loads((out / "validation.json").read_text()),
        "outbox": sorted(p.name for p in (out / "outbox").glob("*.eml")),
        "history": history_rows(folder, day),
    }


def assert_whole_or_absent(folder: Path, day: date, clean: dict[str, Any]) -> None:
    """No half-written date: its files are absent or those of a clean run (``date_state``), and
    so are its history rows.
    """
    state = date_state(folder, day)
    if state["files"] is not None:
        assert set(state["files"]) >= DATE_FILES, state["files"]
        for part in ("files", "scores", "actions", "kpis", "validation", "outbox"):
            assert state[part] == clean[part], part
    if any(state["history"].values()):
        assert state["history"] == clean["history"]
