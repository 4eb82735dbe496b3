"""One measured run inside a fresh process, started by ``benchmarks/run.py``.

``chain``: the weekly flow's body with each Prefect task replaced by its own function
(``task.fn``: the same plain functions the flow's tasks call, without the Prefect engine),
timed per task. ``reference``: the hand-written DuckDB query of ``reference_features.sql``.
``agreement``: both, compared column by column. Each writes one JSON file: seconds, CPU
seconds and the process's peak RSS (sampled) per step.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from string import Template
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import duckdb  # noqa: E402
import great_expectations  # noqa: E402,F401  # chs loads it while the run starts (preload); not a stage's cost
import polars as pl  # noqa: E402
from prefect import Task  # noqa: E402

from flows import chat, pages, steps, weekly, writeback  # noqa: E402
from flows.params import WeeklyParams  # noqa: E402
from tasks.features.build import KNOWN_FEATURES

REFERENCE_SQL = Path(__file__).resolve().parent / "reference_features.sql"
STAGES = (
    "history_read",
    "extract",
    "validate",
    "features",
    "score",
    "recommend",
    "kpis",
    "write_files",
    "render_report",
    "compose_emails",
    "store",
    "deliver",
)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    with Path("/proc/self/statm").open() as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


class _PeakRss:
    """Sample this process's resident set size every few milliseconds in a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


@contextmanager
def _timed(results: dict[str, dict[str, float]], name: str) -> Iterator[None]:
    with _PeakRss() as rss:
        t, cpu = time.perf_counter(), time.process_time()
        yield
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    results[name] = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss.peak}


def _plain_logger() -> logging.Logger:
    return logging.getLogger("benchmark")


def _no_artifact(*args: Any, **kwargs: Any) -> None:
    return None


def _timed_call(
    results: dict[str, dict[str, float]],
    captured: dict[str, Any],
    name: str,
    fn: Callable[..., Any],
) -> Callable[..., Any]:
    """Wrap ``fn`` so each call adds its time, CPU time and peak RSS under ``name``."""

    def call(*args: Any, **kwargs: Any) -> Any:
        one: dict[str, dict[str, float]] = {}
        with _timed(one, name):
            value = fn(*args, **kwargs)
        r = results.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_mb": 0.0})
        r["seconds"] += one[name]["seconds"]
        r["cpu_seconds"] += one[name]["cpu_seconds"]
        r["peak_rss_mb"] = max(r["peak_rss_mb"], one[name]["peak_rss_mb"])
        captured[name] = value
        return value

    return call


def chain(
    config: Path, as_of: date, r: dict[str, dict[str, float]], captured: dict[str, Any]
) -> None:
    """Run the weekly flow's body without Prefect, timing each task into ``r``.

    Every Prefect task the flow module defines is replaced by its own function (``task.fn``)
    wrapped in a timer, so the steps run exactly as the flow calls them, in the flow's order,
    without the Prefect engine, API or logging. ``captured`` gets each step's last result.
    """
    # The task bodies log through get_run_logger() and publish artifacts: both need Prefect.
    # The flow calls the steps from both modules' namespaces (prepare_date lives in steps).
    # The flow's tasks defined elsewhere (account pages, chat, write-back) log from their own
    # modules, which the flow reaches through these two.
    for module in (pages, chat, writeback):
        module.get_run_logger = _plain_logger  # type: ignore[attr-defined]
    names = []
    for module in (weekly, steps):
        module.get_run_logger = _plain_logger  # type: ignore[attr-defined]
        for name in ("create_markdown_artifact", "create_table_artifact"):
            if hasattr(module, name):
                setattr(module, name, _no_artifact)
        for attr, obj in list(vars(module).items()):
            if isinstance(obj, Task):
                names.append(obj.name.replace("-", "_"))
                setattr(module, attr, _timed_call(r, captured, names[-1], obj.fn))
    weekly.weekly_flow.fn(WeeklyParams(config_path=str(config), as_of=as_of, send=False))


def flow_features(config: Path, as_of: date) -> pl.DataFrame:
    """Return the features the weekly flow computes, even if a later step fails."""
    captured: dict[str, Any] = {}
    try:
        chain(config, as_of, {}, captured)
    except Exception:
        if "features" not in captured:
            raise
        traceback.print_exc()
    return captured["features"]


def reference_sql(data: Path, as_of: date) -> str:
    """Return the reference query with the data's paths and the as-of date filled in."""
    return Template(REFERENCE_SQL.read_text(encoding="utf-8")).substitute(
        as_of=as_of.isoformat(),
        surveys=str(data / "surveys" / "*.csv"),
        events=str(data / "analytics" / "events-*.parquet"),
    )


def reference(data: Path, as_of: date) -> tuple[dict[str, dict[str, float]], pl.DataFrame]:
    """Run the hand-written DuckDB reference over the same files; return timing and result."""
    r: dict[str, dict[str, float]] = {}
    sql = reference_sql(data, as_of)
    with _timed(r, "reference_features"):
        con = duckdb.connect(str(data / "crm.duckdb"), read_only=True)
        try:
            result = con.sql(sql).pl()
        finally:
            con.close()
    return r, result


# Columns both compute: every feature but the purchase model and goal attainment (outcomes),
# which the reference leaves out; the reference has a few more (90-day usage, events per user)
NOT_IN_REFERENCE = {"p_alive", "expected_purchases_90d", "p_alive_change_4w", "clv_bgnbd"}
COMPARED = tuple(sorted(KNOWN_FEATURES - NOT_IN_REFERENCE - {"goal_attainment"}))


def agreement(ours: pl.DataFrame, ref: pl.DataFrame, tol: float = 1e-6) -> dict[str, Any]:
    """Compare build_features with the reference, column by column, on the shared accounts."""
    out: dict[str, Any] = {
        "accounts_features": ours.height,
        "accounts_reference": ref.height,
        "accounts_only_in_features": ours.join(ref, on="account_id", how="anti").height,
        "accounts_only_in_reference": ref.join(ours, on="account_id", how="anti").height,
        "columns": {},
    }
    joined = ours.join(ref, on="account_id", how="inner", suffix="_ref")
    out["accounts_in_both"] = joined.height
    for c in COMPARED:
        if c not in ours.columns or c not in ref.columns:
            out["columns"][c] = {"missing_in": "features" if c not in ours.columns else "reference"}
            continue
        a, b = pl.col(c).cast(pl.Float64), pl.col(f"{c}_ref").cast(pl.Float64)
        diff = (a - b).abs()
        s = joined.select(
            both_null=(a.is_null() & b.is_null()).sum(),
            null_mismatch=(a.is_null() ^ b.is_null()).sum(),
            equal=(diff <= tol * pl.max_horizontal(pl.lit(1.0), a.abs())).sum(),
            max_abs_diff=diff.max(),
        ).row(0, named=True)
        s["agree_pct"] = round(100.0 * (s["equal"] + s["both_null"]) / max(joined.height, 1), 3)
        out["columns"][c] = s
    return out


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and write its JSON result; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=("chain", "reference", "agreement"))
    ap.add_argument("--data", type=Path, required=True, help="the cached data folder")
    ap.add_argument("--config", type=Path, help="run config (chain, agreement)")
    ap.add_argument("--as-of", type=date.fromisoformat, required=True)
    ap.add_argument("--result", type=Path, required=True, help="where to write the JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result: dict[str, Any] = {"stages": {}}
    code = 0
    try:
        if args.mode == "chain":
            chain(args.config, args.as_of, result["stages"], {})
        elif args.mode == "reference":
            result["stages"], _ = reference(args.data, args.as_of)
        else:
            ours = flow_features(args.config, args.as_of)
            _, ref = reference(args.data, args.as_of)
            result["agreement"] = agreement(ours, ref)
    except Exception as err:  # keep the stages that finished; the caller reports the failure
        traceback.print_exc()
        result["error"] = f"{type(err).__name__}: {err}"
        code = 3
    result["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.result.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
