"""Write ``benchmarks/results.json`` and the generated part of ``BENCHMARKS.md``."""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
META = ROOT / "benchmarks" / "meta.json"
DOC = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- benchmarks/run.py writes from here on; text outside these markers is kept -->"
END = "<!-- end of the generated part -->"
GIB = 1024.0  # peak_rss_mb is in MiB
SCALE_NAMES = ("S", "L", "XL")  # benchmarks/data.py's SCALES, smallest first


def _scale_order(name: str) -> int:
    return SCALE_NAMES.index(name) if name in SCALE_NAMES else len(SCALE_NAMES)


def machine() -> dict[str, Any]:
    """Describe the machine and the library versions the numbers were measured with."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kb / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{
            pkg: version(dist)
            for pkg, dist in (
                ("polars", "polars"),
                ("duckdb", "duckdb"),
                ("prefect", "prefect"),
                ("great_expectations", "great-expectations"),
                ("pandas", "pandas"),
            )
        },
    }


def load(path: Path, default: Any) -> Any:
    """Read a JSON file, or return ``default`` when there is none yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace the rows of every (scale, task) measured now; keep the others."""
    fresh = {(r["scale"], r["task"]) for r in new}
    return [r for r in old if (r["scale"], r["task"]) not in fresh] + new


def sort_rows(rows: list[dict[str, Any]], tasks: tuple[str, ...]) -> list[dict[str, Any]]:
    """Order result rows: by scale, smallest first, then in pipeline task order.

    Rows of tasks the benchmark no longer has (a stage renamed or split) are dropped, so the
    tables never show a figure nothing measures any more.
    """
    order = {t: i for i, t in enumerate(tasks)}
    known = [r for r in rows if r["task"] in order]
    return sorted(known, key=lambda r: (_scale_order(r["scale"]), r["scale"], order[r["task"]]))


def _row(rows: list[dict[str, Any]], scale: str, task: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["scale"] == scale and r["task"] == task), None)


def ratio(
    rows: list[dict[str, Any]], scale: str, tasks: tuple[str, ...] = ("features",)
) -> float | None:
    """Return the summed medians of ``tasks`` / the median of reference_features at ``scale``."""
    mine = [_row(rows, scale, t) for t in tasks]
    r = _row(rows, scale, "reference_features")
    if not all(mine) or not r or not r["median_s"]:
        return None
    return sum(m["median_s"] for m in mine if m) / r["median_s"]


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """Check the issue's targets: (target, what was measured, met or None when not measured)."""
    out: list[tuple[str, str, bool | None]] = []

    def seconds(scale: str, task: str, limit: float, label: str) -> None:
        r = _row(rows, scale, task)
        if r is None:
            out.append((label, "not measured", None))
            return
        est = " (estimated: run stopped early)" if r.get("estimated") else ""
        out.append((label, f"{r['median_s']:.1f} s{est}", r["median_s"] <= limit))

    def memory(scale: str, task: str, gib: float, label: str) -> None:
        r = _row(rows, scale, task)
        if r is None or r.get("peak_rss_mb") is None:
            out.append((label, "not measured", None))
            return
        part = " (of the part that ran)" if r.get("estimated") else ""
        out.append(
            (label, f"{r['peak_rss_mb'] / GIB:.2f} GiB{part}", r["peak_rss_mb"] <= gib * GIB)
        )

    q = ratio(rows, "L")
    out.append(
        (
            "features at L within 1.5x of the DuckDB reference",
            "not measured" if q is None else f"{q:.2f}x",
            None if q is None else q <= 1.5,
        )
    )
    seconds("L", "weekly_run", 30, "weekly run at L <= 30 s")
    seconds("S", "weekly_run", 12, "weekly run at S <= 12 s")
    server = "against a running Prefect server (PREFECT_API_URL), as a deployment runs"
    seconds("L", "weekly_run_server", 30, f"weekly run at L <= 30 s, {server}")
    seconds("S", "weekly_run_server", 12, f"weekly run at S <= 12 s, {server}")
    memory("L", "weekly_run", 3, "peak RSS of the weekly run at L <= 3 GiB")
    seconds("XL", "weekly_run", 180, "weekly run at XL <= 180 s")
    memory("XL", "weekly_run", 12e9 / 2**30, "peak RSS of the weekly run at XL <= 12 GB")
    seconds("L", "backfill_52w", 90, "52-week backfill at L <= 90 s")
    memory("L", "backfill_52w", 4, "peak RSS of the 52-week backfill at L <= 4 GiB")
    whole = ("weekly_run", "weekly_run_server", "backfill_52w", "reference_features")
    stage_rows = [r for r in rows if r["scale"] == "L" and r["task"] not in whole]
    v = _row(rows, "L", "validate")
    if v is None or len(stage_rows) < 2:
        out.append(("validation at L is not the largest stage", "not measured", None))
    else:
        top = max(stage_rows, key=lambda r: r["median_s"])
        out.append(
            (
                "validation at L is not the largest stage",
                f"largest: {top['task']} ({top['median_s']:.1f} s); validate {v['median_s']:.1f} s",
                top["task"] != "validate",
            )
        )
    return out


def _cells(r: dict[str, Any]) -> list[str]:
    star = "*" if r.get("estimated") else ""

    def num(key: str, fmt: str) -> str:
        return "" if r.get(key) is None else format(r[key], fmt)

    return [
        f"{r['median_s']:.2f}{star}",
        f"{r['min_s']:.2f}–{r['max_s']:.2f} ({r.get('runs', '?')})",
        num("cpu_s", ".1f"),
        num("peak_rss_mb", ",.0f"),
        num("load_1m", ".1f"),
    ]


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """Return the generated part of BENCHMARKS.md."""
    m = meta.get("machine", {})
    lines = [
        BEGIN,
        "",
        f"Measured {meta.get('measured_at', '?')} at commit `{meta.get('code_version', '?')}`.",
        "",
        "### Machine",
        "",
        "| CPU | cores | RAM | OS | Python | Polars | DuckDB | Prefect | GX | pandas |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {m.get('cpu')} | {m.get('cores')} | {m.get('ram_gib')} GiB | {m.get('os')} | "
        f"{m.get('python')} | {m.get('polars')} | {m.get('duckdb')} | {m.get('prefect')} | "
        f"{m.get('great_expectations')} | {m.get('pandas')} |",
        "",
        "### Data (demo generator, seed 7, as of 2026-11-16)",
        "",
        "| scale | accounts | orders | tickets | survey responses | usage events | generated in |",
        "|---|---|---|---|---|---|---|",
    ]
    for scale, d in sorted(meta.get("data", {}).items(), key=lambda kv: _scale_order(kv[0])):
        lines.append(
            f"| {scale} | {d['accounts']:,} | {d['orders']:,} | {d['tickets']:,} | "
            f"{d['survey_responses']:,} | {d['usage_events']:,} | {d.get('generated_in_s', '?')} s |"
        )
    lines += [
        "",
        "### Times",
        "",
        "Wall-clock seconds: median and min–max (number of runs); CPU seconds (user + system, "
        "all threads, median); peak resident set size in MiB; the machine's 1-minute load "
        "average when the runs started (median; the machine is shared, and a load above its "
        "core count means the times include waiting for a CPU). `*` marks a run stopped at its "
        "time limit, whose time is extrapolated from the dates it finished (see Notes).",
    ]
    for scale in SCALE_NAMES:
        present = [r for r in rows if r["scale"] == scale]
        if not present:
            continue
        lines += [
            "",
            f"**{scale}**",
            "",
            "| task | median s | min–max s (runs) | CPU s | peak RSS MiB | load |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [f"| {r['task']} | " + " | ".join(_cells(r)) + " |" for r in present]
    lines += ["", "### Features vs the hand-written DuckDB reference", ""]
    for scale in SCALE_NAMES:
        q = ratio(rows, scale)
        if q is not None:
            lines.append(f"- {scale}: features / reference_features = **{q:.2f}x**")
        q = ratio(rows, scale, ("extract", "features"))
        if q is not None:
            lines.append(
                f"- {scale}: (extract + features) / reference_features = {q:.2f}x "
                "(the reference reads the files itself; features starts from frames in memory)"
            )
    lines += [
        "",
        "### Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for label, measured, ok in targets(rows):
        mark = "not measured" if ok is None else ("**met**" if ok else "**missed**")
        lines.append(f"| {label} | {measured} | {mark} |")
    agree = meta.get("agreement")
    if agree:
        a = agree["result"]
        lines += [
            "",
            f"### Reference agreement ({agree['scale']}, checked {agree['checked_at']})",
            "",
            f"build_features: {a['accounts_features']:,} accounts; reference: "
            f"{a['accounts_reference']:,}; in both: {a['accounts_in_both']:,} "
            f"(only in features: {a['accounts_only_in_features']}, only in reference: "
            f"{a['accounts_only_in_reference']}). A value agrees when both are null or they "
            "differ by at most 1e-6 relative.",
            "",
            "| column | agree % | both null | null in one only | max abs diff |",
            "|---|---:|---:|---:|---:|",
        ]
        for col, c in a["columns"].items():
            if "missing_in" in c:
                lines.append(f"| {col} | missing in {c['missing_in']} | | | |")
                continue
            diff = "" if c["max_abs_diff"] is None else f"{c['max_abs_diff']:.3g}"
            lines.append(
                f"| {col} | {c['agree_pct']} | {c['both_null']:,} | {c['null_mismatch']:,} | {diff} |"
            )
    failures = meta.get("failures") or []
    if failures:
        lines += ["", "### Failures in the last run", ""]
        lines += [f"- {f}" for f in failures]
    notes = meta.get("notes") or []
    if notes:
        lines += ["", "### Notes from the last run", ""]
        lines += [f"- {n}" for n in notes]
    lines += ["", END]
    return "\n".join(lines)


def write_doc(generated: str) -> None:
    """Replace the generated part of BENCHMARKS.md, keeping the hand-written text around it."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + generated + tail
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + generated + "\n"
    DOC.write_text(text, encoding="utf-8")
