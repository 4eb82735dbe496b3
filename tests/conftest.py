"""Shared fixtures: a small demo dataset, and one Prefect test harness for the whole session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# A Prefect home of the session's own (the `chs` processes the tests start inherit it): the
# user's ~/.prefect database may belong to another Prefect version or be in use by another
# run, and its migrations would then fail or race with ours.
_PREFECT_HOME = tempfile.mkdtemp(prefix="chs-test-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)

from demodata.folder import make_demo  # noqa: E402
from tests.processes import MARK, command_line, kill_all, wait_gone  # noqa: E402

# Every process the tests start inherits this mark, so the session-end check below finds the
# ones left running, even those whose parent died (see tests/processes.py).
_SESSION_MARK = uuid.uuid4().hex
os.environ[MARK] = _SESSION_MARK

DEMO_END = date(2026, 11, 16)  # a Monday; fixed so the fixture data never changes


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fail the session if a process the tests started is still running at its end.

    Autouse and session-wide, so it is set up first and torn down last: after the Prefect
    harness has stopped its server. Survivors are listed with their command lines, then killed.
    """
    yield
    if not Path("/proc/self/status").exists():
        return  # the check reads /proc (Linux)
    left = wait_gone(_SESSION_MARK, seconds=5)
    if left:
        lines = "\n".join(f"  {pid}: {command_line(pid)}" for pid in left)
        kill_all(left)
        pytest.fail(f"{len(left)} process(es) started by the tests were left running:\n{lines}")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generate a 200-account demo once per session (copy it before writing into it)."""
    folder = tmp_path_factory.mktemp("demo-template")
    make_demo(folder, 200, seed=11, end=DEMO_END, events_per_account=150, out="out")
    return folder


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Path:
    """Return a private copy of the demo folder; its config is chs.toml with output in out/."""
    target = tmp_path / "demo"
    shutil.copytree(demo_template, target)
    return target


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Run flows against one temporary Prefect API for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """Create a uniquely named database on the local PostgreSQL server; drop it at the end."""
    try:
        admin = psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        pytest.skip(f"the PostgreSQL server on 127.0.0.1:5432 is unreachable ({reason})")
    name = f"chs_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'create database "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'drop database if exists "{name}" with (force)')
        admin.close()
