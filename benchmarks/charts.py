"""What the charts cost: importing the library, starting its engine, one SVG and one PNG each.

    .venv/bin/python benchmarks/charts.py --accounts 2000 --weeks 52 --repeats 5

Draws the three charts of the report and the e-mails (``tasks/report/charts.py``) from seeded
synthetic scores and weekly KPIs and prints one JSON object: the import times, the engine's
start, and per chart the median seconds of ``to_svg`` and ``to_png`` and their sizes.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    """Time the chart module on synthetic data and print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    import altair  # noqa: F401  (Great Expectations imports it too: a run pays nothing more)

    t1 = time.perf_counter()
    import vl_convert  # noqa: F401

    t2 = time.perf_counter()
    import polars as pl

    from tasks.config import Config
    from tasks.report import charts

    cfg = Config.model_validate({"sources": {"accounts": {"uri": "accounts.csv"}}})
    rng = random.Random(7)
    scores = pl.Series([min(100.0, max(0.0, rng.gauss(58, 15))) for _ in range(args.accounts)])
    start = date(2025, 12, 2)
    weeks = [
        {
            "as_of": (start + timedelta(weeks=i)).isoformat(),
            "mean_score": 55 + 5 * rng.random(),
            "accounts_by_segment": {
                "healthy": 900 + i,
                "neutral": 700,
                "at_risk": 300 - i,
                "insufficient_data": 50,
            },
        }
        for i in range(args.weeks)
    ]
    t3 = time.perf_counter()
    charts.warm_up()
    charts.to_svg(charts.histogram(scores, cfg))  # waits for the engine's start
    t4 = time.perf_counter()
    drawn = [
        charts.histogram(scores, cfg),
        charts.trend_chart([(w["as_of"], w["mean_score"]) for w in weeks], cfg),
        charts.segment_mix_chart(weeks),
    ]
    out: dict[str, Any] = {
        "import_altair_s": round(t1 - t0, 3),
        "import_vl_convert_s": round(t2 - t1, 3),
        "engine_start_s": round(t4 - t3, 3),
        "charts": {},
    }
    for chart in drawn:
        assert chart is not None
        svg_t, png_t = [], []
        for _ in range(args.repeats):
            a = time.perf_counter()
            svg = charts.to_svg(chart)
            b = time.perf_counter()
            png = charts.to_png(chart)
            png_t.append(time.perf_counter() - b)
            svg_t.append(b - a)
        out["charts"][chart["name"]] = {
            "svg_s": round(statistics.median(svg_t), 3),
            "png_s": round(statistics.median(png_t), 3),
            "svg_bytes": len(svg),
            "png_bytes": len(png),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
