"""How the report and e-mails write numbers and segments: formats, labels and colours."""

from __future__ import annotations

from tasks.schemas import SEGMENTS

ALL_SEGMENTS = (*SEGMENTS, "insufficient_data")
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies. Every use of a
# colour also carries its segment's name, so colour is never the only cue.
SEGMENT_COLOURS = {
    "healthy": "#009E73",
    "neutral": "#E69F00",
    "at_risk": "#D55E00",
    "insufficient_data": "#999999",
}
# Darker shades of the same hues for text on white (WCAG AA contrast).
SEGMENT_INK = {
    "healthy": "#006D4F",
    "neutral": "#7A5400",
    "at_risk": "#A13F00",
    "insufficient_data": "#5A5A5A",
}
SEGMENT_LABELS = {
    "healthy": "Healthy",
    "neutral": "Neutral",
    "at_risk": "At risk",
    "insufficient_data": "Insufficient data",
}
RANK = {"healthy": 0, "neutral": 1, "at_risk": 2}


def fmt_num(v: float | None, d: int = 0) -> str:
    """Format a number with thousands separators and ``d`` decimals ('–' for none)."""
    return "–" if v is None else f"{v:,.{d}f}"


def pct_filter(v: float | None, d: int = 0) -> str:
    """Format a share as a percentage with ``d`` decimals ('–' for none)."""
    return "–" if v is None else f"{v * 100:.{d}f}%"


def fmt_signed(v: float | None, d: int = 1) -> str:
    """Format a change with its sign and ``d`` decimals ('–' for none)."""
    return "–" if v is None else f"{v:+.{d}f}"


def money(v: float | None) -> str:
    """Format an amount compactly: 950, 12.3k, 4.70M."""
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}B"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:,.0f}"


def count_noun(n: int, noun: str) -> str:
    """Return the count with its noun, plural unless the count is 1."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def pct(v: float | None) -> float | None:
    """Return a share as percentage points (None stays None)."""
    return None if v is None else v * 100
