"""The command line: exit codes and one-sentence errors, without tracebacks."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_END

CHS = [sys.executable, "-m", "flows.cli"]
ROOT = Path(__file__).resolve().parents[3]


def _chs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("CHS_SMTP_HOST", None)
    return subprocess.run(
        [*CHS, *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=300,
        check=False,
    )


def _one_sentence(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr + p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("chs: error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.slow
def test_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    p = _chs("run", "--config", str(tmp_path / "nope.toml"))
    assert p.returncode == 2
    assert "nope.toml does not exist" in _one_sentence(p)


@pytest.mark.slow
def test_bad_toml_and_unknown_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sources.accounts\nuri = 1")
    p = _chs("validate", "--config", str(cfg))
    assert p.returncode == 2
    assert "is not valid TOML" in _one_sentence(p)
    cfg.write_text('[sources.accounts]\nuri = "a.csv"\n[scoring]\nmin_coverag = 0.5\n')
    p = _chs("validate", "--config", str(cfg))
    assert p.returncode == 2
    assert "scoring.min_coverag: unknown key" in _one_sentence(p)


@pytest.mark.slow
def test_bad_date_is_a_usage_error() -> None:
    p = _chs("run", "--as-of", "2026-13-01")
    assert p.returncode == 2
    assert "is not an ISO date" in p.stderr


@pytest.mark.slow
def test_validate_on_demo(demo: Path) -> None:
    p = _chs("validate", "--config", str(demo / "chs.toml"), "--as-of", DEMO_END.isoformat())
    assert p.returncode == 0, p.stderr
    assert "usage_events" in p.stdout
    assert "accepted" in p.stdout


@pytest.mark.slow
def test_run_stops_before_writing_when_a_source_is_missing(demo: Path) -> None:
    (demo / "outcomes.jsonl").unlink()
    p = _chs("run", "--config", str(demo / "chs.toml"), "--as-of", DEMO_END.isoformat())
    assert p.returncode == 1
    assert "outcomes source outcomes.jsonl: file" in _one_sentence(p)
    assert not (demo / "out" / DEMO_END.isoformat()).exists()


@pytest.mark.slow
def test_run_as_a_process_starts_its_own_api_first_and_stops_it(demo: Path) -> None:
    """Without PREFECT_API_URL, `chs run` starts the temporary API itself, then the flows.

    It does so before importing the flows (so Prefect never starts its own), runs against it
    and leaves no server behind.
    """
    p = _chs("run", "--config", str(demo / "chs.toml"), "--as-of", DEMO_END.isoformat())
    assert p.returncode == 0, p.stderr
    logs = p.stdout + p.stderr
    found = re.search(r"Using a temporary server on http://127\.0\.0\.1:(\d+)", logs)
    assert found, logs
    assert "Starting temporary server" not in logs  # Prefect's own temporary server
    assert (demo / "out" / DEMO_END.isoformat() / "scores.csv").exists()
    with socket.socket() as s:  # stopped at exit: nothing listens on its port any more
        assert s.connect_ex(("127.0.0.1", int(found.group(1)))) != 0


@pytest.mark.slow
def test_no_temporary_api_where_one_is_configured_or_no_flow_runs(prefect_harness: None) -> None:
    from flows.cli.main import spawn_api
    from flows.cli.parser import parser
    from flows.server import TemporaryApi

    assert not TemporaryApi.needed()  # the harness sets PREFECT_API_URL
    assert spawn_api(parser().parse_args(["run"])) is None
    assert spawn_api(parser().parse_args(["validate"])) is None
    assert spawn_api(parser().parse_args(["demo", "--skip-run"])) is None


@pytest.mark.slow
def test_a_temporary_api_that_dies_is_not_used(prefect_harness: None) -> None:
    """If the early server exits, nothing points Prefect at it (Prefect starts its own)."""
    from prefect.settings import PREFECT_API_URL

    from flows.server import TemporaryApi

    api = TemporaryApi()
    before = PREFECT_API_URL.value()
    api.proc.kill()
    api.activate(seconds=10)
    assert api.proc.poll() is not None
    assert PREFECT_API_URL.value() == before
