"""Benchmark data sets: demo data at fixed scales, cached by scale and generator version."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from demodata.folder import make_demo

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "cache"
END = date(2026, 11, 16)  # a fixed Monday in the past, so every run sees the same data
SEED = 7
# The generator's behaviour is defined by these files; any change to them makes new data.
GENERATOR_FILES = ("demodata/*.py", "tasks/schemas.py")


@dataclass(frozen=True)
class Scale:
    """One benchmark scale: accounts and product events per account."""

    name: str
    accounts: int
    events_per_account: int


SCALES = {
    "S": Scale("S", 10_000, 200),  # about 2 million usage events
    "L": Scale("L", 100_000, 200),  # about 20 million usage events
    "XL": Scale("XL", 1_000_000, 200),  # about 200 million usage events
}


def generator_version() -> str:
    """Return a short hash of the generator's source, the cache's notion of its version."""
    h = hashlib.sha256()
    files = sorted(f for pattern in GENERATOR_FILES for f in ROOT.glob(pattern))
    if not files:
        raise FileNotFoundError(f"none of the generator's files {GENERATOR_FILES} exist")
    for path in files:
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def data_dir(scale: Scale, version: str) -> Path:
    """Return the cache folder of ``scale`` for generator ``version``."""
    return CACHE / (
        f"{scale.name}-{scale.accounts}x{scale.events_per_account}"
        f"-seed{SEED}-{END.isoformat()}-{version}"
    )


def ensure_data(scale: Scale, log: Callable[[str], None]) -> tuple[Path, dict[str, int]]:
    """Return the cached data folder of ``scale``, generating it first when it is missing."""
    version = generator_version()
    folder = data_dir(scale, version)
    done = folder / "rows.json"
    if done.exists():
        log(f"{scale.name}: reusing {folder.relative_to(ROOT)}")
        return folder, json.loads(done.read_text())
    # A different generator version (or an interrupted generation) leaves stale folders.
    for old in CACHE.glob(f"{scale.name}-*"):
        if old.is_dir():
            shutil.rmtree(old)
    log(f"{scale.name}: generating {scale.accounts:,} accounts into {folder.relative_to(ROOT)}")
    t = time.perf_counter()
    make_demo(folder, scale.accounts, SEED, END, scale.events_per_account, out="out")
    rows = count_rows(folder)
    rows["generated_in_s"] = round(time.perf_counter() - t, 1)
    done.write_text(json.dumps(rows, indent=2))
    log(f"{scale.name}: generated in {rows['generated_in_s']} s: {rows}")
    return folder, rows


def count_rows(folder: Path) -> dict[str, int]:
    """Count the rows of every demo dataset in ``folder``."""
    con = duckdb.connect(str(folder / "crm.duckdb"), read_only=True)
    try:
        rows = {
            t: con.sql(f"select count(*) from {t}").fetchall()[0][0]
            for t in ("accounts", "orders", "tickets")
        }
    finally:
        con.close()
    con = duckdb.connect()
    try:
        rows["survey_responses"] = con.sql(
            f"select count(*) from read_csv('{folder}/surveys/*.csv', union_by_name=true)"
        ).fetchall()[0][0]
        rows["usage_events"] = con.sql(
            f"select count(*) from read_parquet('{folder}/analytics/*.parquet')"
        ).fetchall()[0][0]
    finally:
        con.close()
    return rows


def run_config(folder: Path, out: Path, tag: str) -> Path:
    """Write a copy of the data's config whose output and history live in ``out``."""
    text = (folder / "chs.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^dir = ".*"$', f'dir = "{out}"', text)
    text = re.sub(r'(?m)^history = ".*"$', f'history = "duckdb:///{out}/history.duckdb"', text)
    # every timed run reads its sources, as the first run after new data does: no cache
    text = re.sub(r"(?m)^(history = .*)$", r"\1\ncache = false", text, count=1)
    path = folder / f"bench-{tag}.toml"  # beside the data: its relative source paths still hold
    path.write_text(text, encoding="utf-8")
    return path
