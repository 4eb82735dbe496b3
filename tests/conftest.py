"""Shared fixtures: a small demo dataset, and one Prefect test harness for the whole session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from flows.demo import make_demo  # noqa: E402

DEMO_END = date(2026, 11, 16)  # a Monday; fixed so the fixture data never changes


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
