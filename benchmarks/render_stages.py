r"""The render steps of checkouts side by side: write-files, render-report, compose-emails.

    python3 benchmarks/render_stages.py --data /tmp/demo --as-of 2026-12-01 \\
        --history /tmp/out old=/work/wt-old new=/work/wt-new

Each repeat runs ``benchmarks/worker.py chain`` (the weekly flow's body without Prefect, in a
fresh process) once per checkout, in turn, so the checkouts share the machine's load. A
checkout is ``label=worktree`` or ``label=worktree,data,history`` (its own demo); ``--history``
is an output folder whose top-level files (history, back-test, learned weights) each run starts
from, so the trend and segment-mix charts have their weeks. Prints one JSON line per run and
the medians: wall and CPU seconds of the three steps and their sum, the process's wall and CPU
seconds (``/usr/bin/time``) and the 1-minute load when the run started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

RENDER = ("write_files", "render_report", "compose_emails")


def _config(data: Path, out: Path, no_text: bool) -> str:
    text = (data / "chs.toml").read_text(encoding="utf-8")
    if no_text:  # a checkout from before the text stage refuses these keys
        text = re.sub(r"(?ms)^\[sources\.feedback\].*?(?=^\[(?!sources\.feedback))", "", text)
        text = re.sub(r"(?ms)^\[text\].*?(?=^\[)", "", text)
    text = re.sub(r'(?m)^dir = ".*"$', f'dir = "{out}"', text)
    history = f'history = "duckdb:///{out}/history.duckdb"\ncache = false'
    return re.sub(r'(?m)^history = ".*"$', history, text)


def _run(tree: Path, data: Path, history: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chs-render-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        for f in history.iterdir() if history else ():
            if f.is_file():
                shutil.copy(f, out / f.name)
        config = data / f"render-stages-{os.getpid()}.toml"  # beside the data: relative paths
        config.write_text(_config(data, out, args.no_text), encoding="utf-8")
        result = Path(tmp) / "result.json"
        load = os.getloadavg()[0]
        cmd = ["/usr/bin/time", "-f", "%U %S %e", str(tree / ".venv/bin/python")]
        cmd += [str(tree / "benchmarks/worker.py"), "chain", "--data", str(data)]
        cmd += ["--config", str(config), "--as-of", args.as_of, "--result", str(result)]
        env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        try:
            p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
        finally:
            config.unlink()
        user, system, wall = p.stderr.strip().splitlines()[-1].split()
        stages = json.loads(result.read_text())
    if "error" in stages:
        raise SystemExit(f"{tree}: {stages['error']}")
    row: dict[str, Any] = {"load": load, "proc_wall": float(wall)}
    row["proc_cpu"] = float(user) + float(system)
    for k in RENDER:
        row[k] = stages["stages"][k]["seconds"]
        row[f"{k}_cpu"] = stages["stages"][k]["cpu_seconds"]
    row["render"] = sum(row[k] for k in RENDER)
    row["render_cpu"] = sum(row[f"{k}_cpu"] for k in RENDER)
    return row


def main() -> None:
    """Run every checkout ``--repeats`` times, interleaved, and print the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the data folder (its chs.toml)")
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--history", type=Path, help="an output folder each run starts from")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-text", action="store_true", help="drop [sources.feedback] and [text]")
    ap.add_argument("trees", nargs="+", help="label=worktree[,data,history]")
    args = ap.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeats):
        for spec in args.trees:
            label, _, rest = spec.partition("=")
            tree, *more = rest.split(",")
            data = Path(more[0]) if more else args.data
            history = Path(more[1]) if len(more) > 1 else args.history
            row = _run(Path(tree), data, history, args)
            rows.setdefault(label, []).append(row)
            print(json.dumps({"label": label, **{k: round(v, 3) for k, v in row.items()}}))
    for label, runs in rows.items():
        medians = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        print(json.dumps({"label": label, "runs": len(runs), "median": medians}))


if __name__ == "__main__":
    main()
