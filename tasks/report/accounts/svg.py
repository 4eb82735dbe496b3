"""The account page's charts: data in, one inline ``<svg>`` element out (no JavaScript).

Each function takes plain values and returns escaped SVG markup, so the charts can be drawn
another way (the report's chart helpers) without touching the page's context or template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from tasks.report.format import SEGMENT_COLOURS

_LINE = "#0072B2"
_GRID = "#e3e3e3"
_MARK = "#6a3d9a"  # config-change markers: purple, apart from the segment colours
_LOST = "#A13F00"


@dataclass(frozen=True)
class Mark:
    """A vertical marker on a time axis: a week where the scoring config changed."""

    as_of: str
    label: str


def _svg(width: int, height: int, label: str, body: list[str], css: str = "chart") -> Markup:
    return Markup(
        f'<svg class="{css}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _x_of(n: int, left: float, right: float) -> list[float]:
    if n == 1:
        return [round((left + right) / 2, 1)]
    return [round(left + i * (right - left) / (n - 1), 1) for i in range(n)]


def history_svg(
    dates: Sequence[str],
    values: Sequence[float | None],
    marks: Sequence[Mark],
    thresholds: tuple[float, float],
    title: str,
    width: int = 640,
    height: int = 190,
) -> Markup:
    """Draw a 0-100 line over the dates, the segment thresholds and the config-change marks."""
    left, right, top, bottom = 34, width - 10, 10, height - 22

    def y_of(v: float) -> float:
        return round(bottom - (bottom - top) * v / 100, 1)

    xs = _x_of(len(dates), left, right)
    body = []
    for t in (0, 25, 50, 75, 100):
        body.append(
            f'<line x1="{left}" x2="{right}" y1="{y_of(t)}" y2="{y_of(t)}" stroke="{_GRID}"/>'
        )
        body.append(
            f'<text x="{left - 5}" y="{y_of(t)}" dy="3" text-anchor="end" class="svg-small">{t}</text>'
        )
    at_risk, healthy = thresholds
    for key, level in (("at_risk", at_risk), ("healthy", healthy)):
        body.append(
            f'<line x1="{left}" x2="{right}" y1="{y_of(level)}" y2="{y_of(level)}" '
            f'stroke="{SEGMENT_COLOURS[key]}" stroke-dasharray="4 3"/>'
        )
    position = dict(zip(dates, xs, strict=True))
    for m in marks:
        if m.as_of in position:
            x = position[m.as_of]
            body.append(
                f'<line class="config-mark" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}" '
                f'stroke="{_MARK}" stroke-dasharray="2 2"><title>{escape(m.label)}</title></line>'
                f'<text x="{x - 2}" y="{top + 8}" text-anchor="end" class="svg-small" '
                f'fill="{_MARK}">config</text>'
            )
    segments: list[list[str]] = [[]]
    for x, v in zip(xs, values, strict=True):
        if v is None:
            segments.append([])  # a week without a score breaks the line
        else:
            segments[-1].append(f"{x},{y_of(v)}")
    for seg in segments:
        if len(seg) > 1:
            body.append(
                f'<polyline points="{" ".join(seg)}" fill="none" stroke="{_LINE}" stroke-width="2"/>'
            )
    for d, x, v in zip(dates, xs, values, strict=True):
        if v is not None:
            body.append(
                f'<circle cx="{x}" cy="{y_of(v)}" r="2.5" fill="{_LINE}">'
                f"<title>{escape(d)}: {v:.1f}</title></circle>"
            )
    if dates:
        body.append(
            f'<text x="{left}" y="{height - 5}" class="svg-small">{escape(dates[0])}</text>'
        )
        body.append(
            f'<text x="{right}" y="{height - 5}" text-anchor="end" class="svg-small">'
            f"{escape(dates[-1])}</text>"
        )
    return _svg(width, height, title, body)


def sparkline_svg(
    values: Sequence[float | None], title: str, width: int = 200, height: int = 44
) -> Markup:
    """Draw a small 0-100 line of one dimension over the same weeks, its last value labelled."""
    left, right, top, bottom = 2, width - 30, 4, height - 4
    xs = _x_of(len(values), left, right)
    pts = [
        f"{x},{round(bottom - (bottom - top) * v / 100, 1)}"
        for x, v in zip(xs, values, strict=True)
        if v is not None
    ]
    body = [
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="#f6f7f9"/>'
    ]
    if len(pts) > 1:
        body.append(
            f'<polyline points="{" ".join(pts)}" fill="none" stroke="{_LINE}" stroke-width="1.5"/>'
        )
    elif pts:
        x, y = pts[0].split(",")
        body.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{_LINE}"/>')
    last = next((v for v in reversed(values) if v is not None), None)
    text = "–" if last is None else f"{last:.0f}"
    body.append(
        f'<text x="{width - 2}" y="{height / 2 + 4}" text-anchor="end" class="svg-value">{text}</text>'
    )
    return _svg(width, height, title, body, css="spark")


def waterfall_svg(
    steps: Sequence[tuple[str, float]], end: float, title: str, width: int = 640
) -> Markup:
    """Draw 100 points falling step by step (label, points lost) to the score ``end``."""
    row, left, right, top = 20, 250, width - 50, 6
    height = top + row * (len(steps) + 2) + 6

    def x_of(v: float) -> float:
        return round(left + (right - left) * v / 100, 1)

    body = []
    rows = [("Full health", 0.0, 100.0), *[(lab, lost, 0.0) for lab, lost in steps]]
    level = 100.0
    for i, (lab, lost, full) in enumerate(rows):
        y = top + i * row
        if full:
            x0, x1, colour, value = x_of(0), x_of(full), "#9ab8d6", "100"
        else:
            x0, x1, colour, value = x_of(level - lost), x_of(level), _LOST, f"−{lost:.1f}"
            level -= lost
        body.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" class="svg-small">{escape(lab)}</text>'
            f'<rect class="step" x="{x0}" y="{y + 3}" width="{max(round(x1 - x0, 1), 0.5)}" '
            f'height="{row - 6}" fill="{colour}"><title>{escape(lab)}: {value}</title></rect>'
            f'<text x="{x1 + 4}" y="{y + 13}" class="svg-small">{value}</text>'
        )
    y = top + len(rows) * row
    body.append(
        f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" class="svg-small">Score</text>'
        f'<rect x="{x_of(0)}" y="{y + 3}" width="{max(round(x_of(end) - x_of(0), 1), 0.5)}" '
        f'height="{row - 6}" fill="{_LINE}"/>'
        f'<text x="{x_of(end) + 4}" y="{y + 13}" class="svg-value">{end:.1f}</text>'
    )
    return _svg(width, height, title, body)
