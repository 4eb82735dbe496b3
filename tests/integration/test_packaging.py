"""The wheel: what it ships, and that an installed copy runs the demo outside the checkout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"  # the dev group's uv, next to this interpreter
PACKAGES = ("flows", "tasks", "demodata")
CHECK = """
import hashlib, sys
import expectations, reports, tasks
from tasks.sources.cache import _code_hash
print(all(m.__file__.startswith(sys.prefix) for m in (expectations, reports, tasks)))
print(_code_hash() != hashlib.sha256().hexdigest())
"""


def _uv(*args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [str(UV), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, f"uv {' '.join(args)}:\n{done.stderr[-3000:]}"


def _clean_copy(target: Path) -> Path:
    """Copy the checkout's files that git does not ignore: no stale egg-info or build/ (the
    editable install writes both), whose SOURCES.txt would smuggle files into the sdist.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the sdist and, from it, the wheel (as a release would), into a temporary folder."""
    source = _clean_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--quiet", "--python", sys.executable, "--out-dir", str(out), str(source))
    (found,) = out.glob("customer_health_score-*-py3-none-any.whl")
    return found


def _sources(folder: str, pattern: str) -> set[str]:
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / folder).rglob(pattern)
        if "__pycache__" not in p.parts
    }


def test_the_wheel_ships_the_packages_the_suites_and_the_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in PACKAGES:  # every module of every subpackage
        assert _sources(package, "*.py") <= names, package
    assert _sources("expectations", "*.json") <= names
    assert len(_sources("expectations", "*.json")) >= 6  # one suite per canonical dataset
    assert _sources("reports/templates", "*") <= names
    assert {"reports/templates/report.html.j2", "reports/templates/report.css"} <= names
    assert not {n for n in names if n.startswith(("tests/", "benchmarks/"))}
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[console_scripts]\nchs = flows.cli.main:main" in text


def _processes_of(venv: Path) -> list[int]:
    """Return the ids of the processes running this environment's Python (only ours can)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].decode(errors="replace").startswith(str(venv)):
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_an_installed_wheel_runs_the_demo_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # the locked runtime dependencies (no dev group) from uv's cache, which `make` filled: no
    # network; then the wheel alone
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "0"}
    _uv(
        "sync",
        *("--project", str(ROOT), "--frozen", "--offline", "--no-dev", "--no-install-project"),
        *("--python", sys.executable, "--quiet"),
        env=env,
    )
    _uv(
        "pip",
        "install",
        "--offline",
        "--no-deps",
        "--python",
        str(venv / "bin" / "python"),
        str(wheel),
    )

    site = tmp_path / "site"
    site.mkdir()
    run_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "CHS_", "PYTEST_"))
        and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    run_env.pop("PYTHONDONTWRITEBYTECODE", None)  # the installed copy compiles once, as it runs
    run_env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    try:
        where = subprocess.run(
            [str(venv / "bin" / "python"), "-c", CHECK],
            capture_output=True,
            text=True,
            cwd=site,
            env=run_env,
            timeout=60,
            check=False,
        )
        assert where.returncode == 0, where.stderr[-3000:]
        # imported from the environment, not the checkout; the cache key hashes the installed code
        assert where.stdout.split() == ["True", "True"], where.stdout
        demo = subprocess.run(
            [str(venv / "bin" / "chs"), "demo", "--dir", str(site / "demo"), "--accounts", "50"],
            capture_output=True,
            text=True,
            cwd=site,
            env=run_env,
            timeout=600,
            check=False,
        )
        assert demo.returncode == 0, demo.stderr[-3000:]
        assert _processes_of(venv) == []  # the temporary Prefect server stopped with the run
    finally:
        for pid in _processes_of(venv):
            os.kill(pid, signal.SIGKILL)
    assert (site / "demo" / "chs.toml").is_file()
    # the weekly run for today writes out/<today>/, beside the demo folder (its config says ../out)
    assert list((site / "out").glob("????-??-??/report.html")), demo.stdout[-3000:]
