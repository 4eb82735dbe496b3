"""The report's charts as inline SVG data (score distribution, trend, segment mix).

The report needs no JavaScript and no network; the e-mails draw the same chart data as PNG
images (``tasks.mail.charts``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.report.format import SEGMENT_COLOURS, SEGMENT_INK, SEGMENT_LABELS


def _band(score_mid: float, cfg: Config) -> str:
    seg = cfg.scoring.segments
    if score_mid >= seg.healthy:
        return "healthy"
    return "at_risk" if score_mid < seg.at_risk else "neutral"


def histogram(
    scores: pl.Series, cfg: Config, width: int = 560, height: int = 180
) -> dict[str, Any]:
    """Lay out a 10-point score histogram, each bar coloured by its segment band."""
    bins = (scores.drop_nulls() // 10).clip(0, 9).cast(pl.Int64).value_counts()
    counts = dict.fromkeys(range(10), 0) | dict(bins.iter_rows())
    top = max(counts.values()) or 1
    bw, base = width / 10, height - 34
    bars = []
    for i, c in counts.items():
        h = (base - 20) * c / top
        band = _band(i * 10 + 5, cfg)
        bars.append(
            {
                "x": round(i * bw + 3, 1),
                "y": round(base - h, 1),
                "w": round(bw - 6, 1),
                "h": round(h, 1),
                "colour": SEGMENT_COLOURS[band],
                "segment": SEGMENT_LABELS[band],
                "count": c,
                "count_y": round(base - h - 4, 1),
                "label": f"{i * 10}–{i * 10 + 10}",
                "lx": round(i * bw + bw / 2, 1),
            }
        )
    seg = cfg.scoring.segments
    edges = [
        ("at_risk", 0.0, seg.at_risk, f"At risk < {seg.at_risk:g}"),
        ("neutral", seg.at_risk, seg.healthy, "Neutral"),
        ("healthy", seg.healthy, 100.0, f"Healthy ≥ {seg.healthy:g}"),
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "axis_y": base,
        "label_y": base + 14,
        "band_y": height - 4,
        "bands": [
            {"x": round((lo + hi) / 2 / 100 * width, 1), "label": label, "ink": SEGMENT_INK[key]}
            for key, lo, hi, label in edges
            if hi > lo
        ],
        "thresholds": [
            {"x": round(t / 100 * width, 1), "y1": 8, "y2": base}
            for t in (seg.at_risk, seg.healthy)
        ],
        "total": sum(counts.values()),
    }


def _nice_range(values: list[float]) -> tuple[float, float, float]:
    lo = max(0.0, math.floor((min(values) - 2) / 5) * 5)
    hi = min(100.0, math.ceil((max(values) + 2) / 5) * 5)
    if hi - lo < 10:
        lo, hi = max(0.0, hi - 10), max(hi, lo + 10)
    step = 5.0 if hi - lo <= 30 else 10.0 if hi - lo <= 60 else 20.0
    return lo, hi, step


def trend_chart(
    points: list[tuple[str, float | None]], cfg: Config, width: int = 560, height: int = 180
) -> dict[str, Any] | None:
    """Lay out the mean score per week on a labelled axis (needs two or more weeks)."""
    pts = [(d, v) for d, v in points if v is not None]
    if len(pts) < 2:
        return None
    lo, hi, step = _nice_range([v for _, v in pts])
    left, right, top, bottom = 40, width - 14, 12, height - 26

    def y_of(v: float) -> float:
        return round(bottom - (bottom - top) * (v - lo) / (hi - lo), 1)

    dx = (right - left) / (len(pts) - 1)
    dots = [
        {
            "x": round(left + i * dx, 1),
            "y": y_of(v),
            "value": f"{v:.1f}",
            "label": f"{d}: mean score {v:.1f}",
        }
        for i, (d, v) in enumerate(pts)
    ]
    seg = cfg.scoring.segments
    refs = [
        {"y": y_of(t), "colour": SEGMENT_COLOURS[k], "ink": SEGMENT_INK[k], "label": label}
        for k, t, label in (
            ("healthy", seg.healthy, f"healthy ≥ {seg.healthy:g}"),
            ("at_risk", seg.at_risk, f"at risk < {seg.at_risk:g}"),
        )
        if lo <= t <= hi
    ]
    n_ticks = round((hi - lo) / step)
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": right,
        "tick_x": left - 6,
        "polyline": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "ticks": [
            {"y": y_of(lo + i * step), "label": f"{lo + i * step:g}"} for i in range(n_ticks + 1)
        ],
        "references": refs,
        "xlabels": [
            {"x": left, "label": pts[0][0], "anchor": "start"},
            {"x": right, "label": pts[-1][0], "anchor": "end"},
        ],
        "xlabel_y": height - 4,
        "last": dots[-1],
        "last_label_x": round(left + (len(pts) - 1) * dx - 4, 1),
        "last_label_y": round(y_of(pts[-1][1]) - 8, 1),
        "weeks": len(pts),
        "first_date": pts[0][0],
        "last_date": pts[-1][0],
        "lo": f"{min(v for _, v in pts):.1f}",
        "hi": f"{max(v for _, v in pts):.1f}",
    }


def segment_mix_chart(
    history: Sequence[Mapping[str, Any]], width: int = 560, height: int = 150
) -> dict[str, Any] | None:
    """Lay out one stacked column per week: the share of accounts in each segment."""
    weeks = [k for k in history if sum((k.get("accounts_by_segment") or {}).values())]
    if len(weeks) < 2:
        return None
    left, right, top, bottom = 40, width - 14, 8, height - 22
    slot = (right - left) / len(weeks)
    cols = []
    for i, k in enumerate(weeks):
        counts = k["accounts_by_segment"]
        total = sum(counts.values())
        y = float(bottom)
        parts = []
        for s in ("at_risk", "neutral", "healthy", "insufficient_data"):
            h = (bottom - top) * counts.get(s, 0) / total
            y -= h
            parts.append(
                {
                    "y": round(y, 1),
                    "h": round(h, 1),
                    "colour": SEGMENT_COLOURS[s],
                    "title": f"{k['as_of']}: {SEGMENT_LABELS[s]} {counts.get(s, 0)} "
                    f"({100 * counts.get(s, 0) / total:.0f}%)",
                }
            )
        cols.append({"x": round(left + i * slot + 2, 1), "w": round(slot - 4, 1), "parts": parts})
    return {
        "width": width,
        "height": height,
        "columns": cols,
        "ticks": [
            {"y": round(bottom - (bottom - top) * f, 1), "label": f"{f:.0%}"} for f in (0, 0.5, 1)
        ],
        "left": left,
        "right": right,
        "tick_x": left - 6,
        "xlabels": [
            {"x": left, "label": weeks[0]["as_of"], "anchor": "start"},
            {"x": right, "label": weeks[-1]["as_of"], "anchor": "end"},
        ],
        "xlabel_y": height - 4,
        "legend": [
            {"label": SEGMENT_LABELS[s], "colour": SEGMENT_COLOURS[s]}
            for s in ("healthy", "neutral", "at_risk", "insufficient_data")
        ],
    }
