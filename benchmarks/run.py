"""``make bench``: time the pipeline at 10k (S) and 100k (L) accounts; see BENCHMARKS.md.

``--scales XL`` adds a million accounts (200 million events; generated once, about 16 min):
its backfill is left out unless ``--only`` names it.

For each scale: the whole ``chs run`` as a process, each stage of the weekly flow in process
(without Prefect), the hand-written DuckDB reference for the features, and a 52-week
``chs backfill`` as a process. Every measured run is a fresh process, with its own output
folder. Writes benchmarks/results.json, benchmarks/meta.json and the tables in BENCHMARKS.md.

    benchmarks/run.py [--scales S,L] [--repeats 3] [--only weekly_run,features,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import report
from data import CACHE, END, ROOT, SCALES, ensure_data, run_config
from worker import STAGES

from flows.server import local_server

PROCESS_TASKS = ("weekly_run", "weekly_run_server", "backfill_52w")
TASKS = (
    "weekly_run",
    "weekly_run_server",
    "backfill_52w",
    *STAGES,
    "reference_features",
    "text_stage",  # benchmarks/text.py: texts per second of tasks/text/ (10k and 100k texts)
)
CHS = ROOT / ".venv" / "bin" / "chs"
WORKER = Path(__file__).resolve().parent / "worker.py"
RUNS = CACHE / "runs"
BACKFILL_WEEKS = 52
BACKFILL_SKIPPED = ("XL",)  # scales whose backfill runs only when --only names it
_DONE = re.compile(r"(\d\d:\d\d:\d\d\.\d+) \| INFO .*backfill (\d+)/(\d+): \S+ done")


@dataclass
class Measured:
    """One measured run of one task."""

    seconds: float
    peak_rss_mb: float | None
    cpu_s: float | None = None  # user + system CPU seconds (all threads; children for processes)
    load: float | None = None  # 1-minute load average when the run started (a shared machine)
    estimated: bool = False  # stopped at the time limit; seconds extrapolated
    note: str = ""


def log(msg: str) -> None:
    """Print a progress line with the time of day."""
    print(f"{datetime.now():%H:%M:%S} {msg}", flush=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHS_SMTP")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    return env


def _kill_group(pid: int, flag: threading.Event) -> None:
    flag.set()
    try:
        os.killpg(pid, signal.SIGTERM)
        time.sleep(5)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class ProcessRun:
    """What one process run measured."""

    seconds: float
    peak_rss_mb: float
    cpu_s: float
    load: float
    code: int
    timed_out: bool


def run_process(
    cmd: list[str], log_path: Path, timeout: float, env: dict[str, str] | None = None
) -> ProcessRun:
    """Run ``cmd`` in its own process group and measure it."""
    load = os.getloadavg()[0]
    timed_out = threading.Event()
    with log_path.open("wb") as out:
        t = time.perf_counter()
        p = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env or _env(),
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, (p.pid, timed_out))
        timer.start()
        try:
            # wait4 gives this child's own rusage: ru_maxrss is its peak (or its children's)
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    return ProcessRun(
        seconds,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        load,
        p.returncode,
        timed_out.is_set(),
    )


def _tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])


class Bench:
    """Runs the measurements of one invocation and collects their results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.runs: dict[tuple[str, str], list[Measured]] = {}
        self.agreement: dict[str, Any] | None = None
        self.data: dict[str, dict[str, int]] = {}  # rows per dataset, by scale
        self.on_result: Callable[[], object] = lambda: None

    def add(self, scale: str, task: str, m: Measured) -> None:
        """Record one measured run and save the results so far."""
        self.runs.setdefault((scale, task), []).append(m)
        self.on_result()

    def fail(self, scale: str, task: str, msg: str) -> None:
        """Record and log a run that failed."""
        self.failures.append(f"{scale} {task}: {msg}")
        log(f"FAILED {scale} {task}: {msg}")

    def _out(self, scale: str, tag: str) -> Path:
        out = RUNS / scale / tag
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def _cleanup(self, out: Path, config: Path) -> None:
        config.unlink(missing_ok=True)
        if not self.args.keep_outputs:
            shutil.rmtree(out, ignore_errors=True)

    def weekly(
        self,
        scale: str,
        data: Path,
        i: int,
        task: str = "weekly_run",
        env: dict[str, str] | None = None,
    ) -> None:
        """Time ``chs run`` as a process, with its own output folder (``env``: a server's)."""
        tag = f"{task}-{i}"
        out = self._out(scale, tag)
        config = run_config(data, out, tag)
        cmd = [str(CHS), "run", "--config", str(config), "--as-of", END.isoformat()]
        log_path = RUNS / scale / f"{tag}.log"
        r = run_process(cmd, log_path, self.args.timeout, env)
        ok = r.code == 0 and (out / END.isoformat() / "scores.parquet").exists()
        if r.timed_out:
            self.fail(scale, task, f"stopped after {self.args.timeout:.0f} s")
        elif not ok:
            self.fail(scale, task, f"exit {r.code}:\n{_tail(log_path)}")
        else:
            self.add(scale, task, Measured(r.seconds, r.peak_rss_mb, r.cpu_s, r.load))
            log(f"{scale} {task} #{i}: {r.seconds:.1f} s, peak RSS {r.peak_rss_mb:,.0f} MiB")
        self._cleanup(out, config)

    def weekly_on_server(self, scale: str, data: Path) -> None:
        """Time ``chs run`` against a running Prefect server, as a deployment runs it."""
        home = RUNS / "prefect-home"
        shutil.rmtree(home, ignore_errors=True)
        with local_server(home) as env:
            env = {k: v for k, v in env.items() if not k.startswith("CHS_SMTP")}
            for i in range(1, self.args.repeats + 1):
                self.weekly(scale, data, i, "weekly_run_server", env)

    def backfill(self, scale: str, data: Path, i: int) -> bool:
        """Time a 52-week ``chs backfill`` as a process; return False when it hit the limit."""
        tag = f"backfill_52w-{i}"
        out = self._out(scale, tag)
        config = run_config(data, out, tag)
        start = END - timedelta(weeks=BACKFILL_WEEKS - 1)
        cmd = [str(CHS), "backfill", "--config", str(config)]
        cmd += ["--start", start.isoformat(), "--end", END.isoformat(), "--every", "1w"]
        log_path = RUNS / scale / f"{tag}.log"
        began = datetime.now()
        r = run_process(cmd, log_path, self.args.backfill_timeout)
        if r.timed_out:
            m = self._extrapolate(log_path, began, r)
            if m is None:
                self.fail(scale, "backfill_52w", f"no date finished in {r.seconds:.0f} s")
            else:
                self.add(scale, "backfill_52w", m)
                self.notes.append(f"{scale} backfill_52w: {m.note}")
                log(f"{scale} backfill_52w #{i}: {m.note}")
        elif r.code != 0:
            self.fail(scale, "backfill_52w", f"exit {r.code}:\n{_tail(log_path)}")
        else:
            self.add(scale, "backfill_52w", Measured(r.seconds, r.peak_rss_mb, r.cpu_s, r.load))
            log(f"{scale} backfill_52w #{i}: {r.seconds:.1f} s, peak RSS {r.peak_rss_mb:,.0f} MiB")
        self._cleanup(out, config)
        return not r.timed_out

    @staticmethod
    def _extrapolate(log_path: Path, began: datetime, r: ProcessRun) -> Measured | None:
        """Estimate a stopped backfill's total from the dates it finished (log timestamps)."""
        done = [
            (m.group(1), int(m.group(2)), int(m.group(3)))
            for m in map(_DONE.search, log_path.read_text(errors="replace").splitlines())
            if m
        ]
        if not done:
            return None

        def at(hms: str) -> float:
            t = datetime.combine(began.date(), datetime.strptime(hms, "%H:%M:%S.%f").time())
            if t < began:  # the run went past midnight
                t += timedelta(days=1)
            return (t - began).total_seconds()

        k, n = done[-1][1], done[-1][2]
        first, last = at(done[0][0]), at(done[-1][0])
        per_date = (last - first) / (k - 1) if k > 1 else last
        total = last + (n - k) * per_date
        note = (
            f"stopped at the {r.seconds:.0f} s limit after {k}/{n} dates "
            f"({per_date:.1f} s per date); {n} dates extrapolate to {total:.0f} s"
        )
        return Measured(total, r.peak_rss_mb, None, r.load, estimated=True, note=note)

    def worker(self, scale: str, data: Path, mode: str, i: int) -> dict[str, Any] | None:
        """Run benchmarks/worker.py in a fresh process and return its JSON."""
        tag = f"{mode}-{i}"
        out = self._out(scale, tag)
        config = run_config(data, out, tag)
        result = RUNS / scale / f"{tag}.json"
        result.unlink(missing_ok=True)
        cmd = [sys.executable, str(WORKER), mode, "--data", str(data), "--config", str(config)]
        cmd += ["--as-of", END.isoformat(), "--result", str(result)]
        log_path = RUNS / scale / f"{tag}.log"
        r = run_process(cmd, log_path, self.args.timeout)
        self._cleanup(out, config)
        if r.timed_out or not result.exists():
            why = "time limit" if r.timed_out else f"exit {r.code}"
            self.fail(scale, mode, f"{why}:\n{_tail(log_path)}")
            return None
        res: dict[str, Any] = json.loads(result.read_text())
        res["load"] = r.load
        if "error" in res:  # the stages before the failing one still count
            self.fail(
                scale, mode, f"{res['error']} (after {', '.join(res['stages']) or 'no stage'})"
            )
        return res

    def stages(self, scale: str, data: Path, mode: str, i: int, wanted: set[str] | None) -> None:
        """Run a worker; record the steps in ``wanted`` (None: every step it timed)."""
        res = self.worker(scale, data, mode, i)
        if res is None:
            return
        for name, s in res["stages"].items():
            if wanted is None or name in wanted:
                m = Measured(s["seconds"], s["peak_rss_mb"], s.get("cpu_seconds"), res["load"])
                self.add(scale, name, m)
        summary = ", ".join(f"{k} {v['seconds']:.2f}" for k, v in res["stages"].items())
        log(f"{scale} {mode} #{i}: {summary}")

    def profile(self, scale: str, data: Path) -> None:
        """Profile one weekly run with pyinstrument; save the text report."""
        tag = "profile"
        out = self._out(scale, tag)
        config = run_config(data, out, tag)
        target = ROOT / "benchmarks" / f"profile_{scale}.txt"
        cmd = [str(ROOT / ".venv" / "bin" / "pyinstrument"), "-r", "text", "-o", str(target)]
        cmd += ["-i", "0.005", "--no-color", "--unicode"]
        cmd += ["-m", "flows.cli", "run", "--config", str(config), "--as-of", END.isoformat()]
        log_path = RUNS / scale / f"{tag}.log"
        r = run_process(cmd, log_path, self.args.timeout)
        self._cleanup(out, config)
        if r.code != 0 or r.timed_out:
            self.fail(scale, "profile", f"exit {r.code}:\n{_tail(log_path)}")
            return
        text = target.read_text(encoding="utf-8").replace(str(config), "<config>")
        target.write_text(text, encoding="utf-8")
        log(
            f"{scale} profile written to {target.relative_to(ROOT)} ({r.seconds:.0f} s under the profiler)"
        )

    def text_stage(self, scale: str) -> None:
        """Time the text stage in a fresh process (benchmarks/text.py); note its texts/s."""
        log_path = RUNS / scale / "text_stage.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "text.py"), "throughput"]
        r = run_process([*cmd, "--scale", scale], log_path, self.args.timeout)
        if r.code != 0 or r.timed_out:
            self.fail(scale, "text_stage", f"exit {r.code}:\n{_tail(log_path)}")
            return
        res = json.loads((ROOT / "benchmarks" / "text_results.json").read_text())
        got = res[f"throughput_{scale}"]
        self.add(
            scale,
            "text_stage",
            Measured(float(got["seconds"]), None, note=f"{got['texts_per_second']} texts/s"),
        )
        self.notes.append(
            f"{scale} text_stage: {got['texts']:,} texts at {got['texts_per_second']} texts/s "
            f"(English {got['en']['texts_per_second']}/s, Chinese {got['zh']['texts_per_second']}/s)"
        )
        log(f"{scale} text_stage {got['seconds']} s, {got['texts_per_second']} texts/s")

    def scale(self, name: str, tasks: set[str]) -> None:
        """Measure every wanted task at one scale."""
        data, rows = ensure_data(SCALES[name], log)
        self.data[name] = rows
        staged = tasks & set(STAGES)
        every = staged == set(STAGES)  # then also steps the flow has gained since STAGES
        for i in range(1, self.args.repeats + 1):
            if "weekly_run" in tasks:
                self.weekly(name, data, i)
            if staged:
                self.stages(name, data, "chain", i, None if every else staged)
            if "reference_features" in tasks:
                self.stages(name, data, "reference", i, {"reference_features"})
        if "text_stage" in tasks:
            self.text_stage(name)
        if "weekly_run_server" in tasks:
            self.weekly_on_server(name, data)
        if "backfill_52w" in tasks and name in BACKFILL_SKIPPED and not self.args.only:
            self.notes.append(
                f"{name} backfill_52w: not run (at {SCALES[name].accounts:,} accounts 52 dates "
                "take far beyond the time limit; `--only backfill_52w` runs it)"
            )
        elif "backfill_52w" in tasks:
            for i in range(1, (self.args.backfill_repeats or self.args.repeats) + 1):
                if not self.backfill(name, data, i):
                    self.notes.append(
                        f"{name} backfill_52w: not repeated after hitting the "
                        f"{self.args.backfill_timeout:.0f} s limit"
                    )
                    break
        if self.args.check and name == "S" and "reference_features" in tasks:
            res = self.worker(name, data, "agreement", 1)
            if res is not None and "agreement" in res:
                self.agreement = {
                    "scale": name,
                    "checked_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "result": res["agreement"],
                }
                log(f"{name} reference agreement written")
        profile = self.args.profile
        if profile is None:
            profile = name == "L" and "weekly_run" in tasks
        if profile:
            self.profile(name, data)

    def rows(self) -> list[dict[str, Any]]:
        """Return one result row per scale and task, summarising its runs."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = []
        for (scale, task), ms in self.runs.items():
            secs = [m.seconds for m in ms]
            rss = [m.peak_rss_mb for m in ms if m.peak_rss_mb is not None]
            cpu = [m.cpu_s for m in ms if m.cpu_s is not None]
            load = [m.load for m in ms if m.load is not None]
            row: dict[str, Any] = {
                "scale": scale,
                "task": task,
                "median_s": round(statistics.median(secs), 3),
                "min_s": round(min(secs), 3),
                "max_s": round(max(secs), 3),
                "peak_rss_mb": round(max(rss), 1) if rss else None,
                "runs": len(ms),
                "cpu_s": round(statistics.median(cpu), 3) if cpu else None,
                "load_1m": round(statistics.median(load), 2) if load else None,
                "measured_at": now,
            }
            if any(m.estimated for m in ms):
                row["estimated"] = True
            out.append(row)
        return out


def _code_version() -> str:
    def git(*a: str) -> str:
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=False)
        return r.stdout.strip()

    dirty = " + uncommitted changes" if git("status", "--porcelain", "--", "flows", "tasks") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line of ``benchmarks/run.py``."""
    ap = argparse.ArgumentParser(description="Benchmark the pipeline (see BENCHMARKS.md).")
    ap.add_argument(
        "--scales", default="S,L", help="comma-separated: S (10k), L (100k), XL (1M accounts)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs per task (default 3)")
    ap.add_argument("--only", default="", help=f"comma-separated tasks of: {', '.join(TASKS)}")
    ap.add_argument("--timeout", type=float, default=1800, help="limit per run in seconds")
    ap.add_argument(
        "--backfill-timeout",
        type=float,
        default=900,
        help="limit per backfill in seconds; a stopped backfill is extrapolated, not repeated",
    )
    ap.add_argument(
        "--backfill-repeats",
        type=int,
        default=None,
        help="runs of the backfill (default: --repeats)",
    )
    ap.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile a weekly run with pyinstrument (default: at L when weekly_run is measured)",
    )
    ap.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare build_features with the reference at S (default: on)",
    )
    ap.add_argument("--keep-outputs", action="store_true", help="keep each run's output folder")
    args = ap.parse_args(argv)
    args.scale_list = [s.strip().upper() for s in args.scales.split(",") if s.strip()]
    bad = [s for s in args.scale_list if s not in SCALES]
    tasks = [t.strip() for t in args.only.split(",") if t.strip()] or list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if bad or unknown or args.repeats < 1:
        ap.error(f"unknown scale or task: {', '.join(bad + unknown) or '--repeats must be >= 1'}")
    args.tasks = set(tasks)
    return args


def save(bench: Bench, baseline: list[dict[str, Any]]) -> list[str]:
    """Write results.json, meta.json and BENCHMARKS.md from what was measured so far."""
    rows = report.sort_rows(report.merge_rows(baseline, bench.rows()), TASKS)
    report.RESULTS.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    meta = report.load(report.META, {})
    meta.update(
        machine=report.machine(),
        measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        code_version=_code_version(),
        failures=bench.failures,
        notes=bench.notes,
    )
    meta.setdefault("data", {}).update(bench.data)
    if bench.agreement:
        meta["agreement"] = bench.agreement
    report.META.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    report.write_doc(report.markdown(rows, meta))
    return bench.failures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks the command line asks for; return the exit status."""
    args = parse_args(argv)
    bench = Bench(args)
    baseline = report.load(report.RESULTS, [])
    # saved after every measured run, so an interrupted benchmark keeps what it measured
    bench.on_result = lambda: save(bench, baseline)
    for name in args.scale_list:
        bench.scale(name, args.tasks)
    failures = save(bench, baseline)
    log(f"wrote {report.RESULTS.relative_to(ROOT)} and {report.DOC.relative_to(ROOT)}")
    for f in failures:
        log(f"failure: {f.splitlines()[0]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
