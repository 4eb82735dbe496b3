"""Every chart of the report and the e-mails, drawn once with Vega-Altair.

One function per chart returns a :class:`ChartSpec` (the Vega-Lite spec with its alt text,
caption and facts the templates print); two exporters turn a spec into inline SVG for the
report (``to_svg``) and PNG for the e-mails (``to_png``). vl-convert renders both without a
browser or the network. Colours are the Okabe-Ito segment colours of ``tasks.report.format``;
every text is dark on white (WCAG AA) and every colour also has its segment's name beside it.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any, TypedDict

import altair as alt
import polars as pl
import vl_convert

from tasks.config import Config
from tasks.report.format import SEGMENT_COLOURS, SEGMENT_INK, SEGMENT_LABELS

WIDTH = 520  # the plot area; axes and legend add about 100 px
FONT = "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
INK, MUTED, GRID = "#1a1a1a", "#444444", "#e3e3e3"
LINE = "#0072B2"  # Okabe-Ito blue: the one series of the trend
PNG_SCALE = 2  # e-mail images at twice their CSS size: sharp on high-density screens
# at risk at the bottom of each column, insufficient data on top
STACK_ORDER = ("at_risk", "neutral", "healthy", "insufficient_data")
_CONFIG: dict[str, Any] = {
    "font": FONT,
    "background": "#ffffff",
    "padding": 8,
    "view": {"stroke": None},
    "axis": {
        "labelColor": MUTED,
        "titleColor": INK,
        "labelFontSize": 11,
        "titleFontSize": 12,
        "titleFontWeight": 600,
        "gridColor": GRID,
        "domainColor": "#767676",
        "tickColor": "#767676",
        "labelOverlap": "greedy",  # a label that would touch its neighbour is not drawn
        "labelFlush": True,
    },
    "legend": {
        "labelColor": INK,
        "titleColor": INK,
        "labelFontSize": 11,
        "titleFontSize": 12,
        "orient": "bottom",
        "direction": "horizontal",
        "symbolType": "square",
    },
}


class ChartSpec(TypedDict):
    """One chart: its Vega-Lite spec, what it says in words, and (for the report) its SVG."""

    name: str  # a file-name-safe key, also the e-mail image's name
    caption: str
    alt: str
    spec: dict[str, Any]
    facts: dict[str, Any]  # numbers the templates print beside the chart
    svg: str  # filled by with_svg for the report; empty until then


def _spec(chart: Any, datasets: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    spec: dict[str, Any] = chart.configure(**_CONFIG).to_dict(validate=False)
    spec["datasets"] = dict(datasets)  # after to_dict, which would walk every row
    return spec


def _chart(
    name: str,
    caption: str,
    alt_text: str,
    chart: Any,
    datasets: Mapping[str, list[dict[str, Any]]],
    **facts: Any,
) -> ChartSpec:
    spec = _spec(chart, datasets)
    return {
        "name": name,
        "caption": caption,
        "alt": alt_text,
        "spec": spec,
        "facts": facts,
        "svg": "",
    }


def _data(name: str) -> Any:
    # a dataset of the spec's own "datasets": it carries its numbers, nothing is fetched
    return alt.NamedData(name=name)


def _band(score_mid: float, at_risk: float, healthy: float) -> str:
    if score_mid >= healthy:
        return "healthy"
    return "at_risk" if score_mid < at_risk else "neutral"


def _segment_scale(keys: Sequence[str], labels: Mapping[str, str]) -> Any:
    return alt.Scale(domain=[labels[k] for k in keys], range=[SEGMENT_COLOURS[k] for k in keys])


def _histogram_rows(counts: Mapping[int, int], at_risk: float, healthy: float) -> list[Any]:
    labels = _histogram_labels(at_risk, healthy)
    return [
        {
            "lo": i * 10,
            "hi": i * 10 + 10,
            "count": c,
            "segment": labels[_band(i * 10 + 5, at_risk, healthy)],
        }
        for i, c in counts.items()
    ]


def _histogram_labels(at_risk: float, healthy: float) -> dict[str, str]:
    return {
        "at_risk": f"At risk (< {at_risk:g})",
        "neutral": "Neutral",
        "healthy": f"Healthy (≥ {healthy:g})",
    }


def histogram_spec(rows: list[dict[str, Any]], at_risk: float, healthy: float) -> dict[str, Any]:
    """Build the histogram's Vega-Lite spec from its ten bins with Altair.

    ``histogram`` fills a copy of one such spec per call instead (the same dict without
    Altair's ~30 ms: a run draws a histogram per CSM digest, and only their numbers differ).
    """
    labels = _histogram_labels(at_risk, healthy)
    keys = [
        k for k in ("at_risk", "neutral", "healthy") if any(labels[k] == r["segment"] for r in rows)
    ]
    x = alt.X(
        "lo:Q",
        title="Health score (10-point bins)",
        scale=alt.Scale(domain=[0, 100], nice=False),
        axis=alt.Axis(values=list(range(0, 101, 10)), grid=False),
    )
    base = alt.Chart(_data("bins")).encode(x=x, x2="hi:Q")
    bars = base.mark_bar(binSpacing=2, stroke="#ffffff", strokeWidth=1).encode(
        y=alt.Y(
            "count:Q",
            title="Accounts",
            scale=alt.Scale(domain=_count_domain(rows)),
            axis=alt.Axis(tickMinStep=1, grid=True),
        ),
        y2=alt.datum(0),
        color=alt.Color(
            "segment:N",
            scale=_segment_scale(keys, labels),
            title=None,
            sort=[labels[k] for k in keys],
        ),
    )
    text = (
        alt.Chart(_data("labels"))
        .mark_text(dy=-6, fontSize=10, color=INK)
        .encode(x="mid:Q", y="count:Q", text=alt.Text("count:Q", format=","))
    )
    rules = (
        alt.Chart(_data("thresholds")).mark_rule(strokeDash=[3, 3], color="#767676").encode(x="t:Q")
    )
    chart = (rules + bars + text).properties(width=WIDTH, height=170)
    return _spec(chart, _histogram_data(rows, at_risk, healthy))


def _histogram_data(
    rows: list[dict[str, Any]], at_risk: float, healthy: float
) -> dict[str, list[dict[str, Any]]]:
    return {
        "thresholds": [{"t": at_risk}, {"t": healthy}],
        "bins": rows,
        "labels": [{**r, "mid": r["lo"] + 5} for r in rows],
    }


def _count_domain(rows: list[dict[str, Any]]) -> list[float]:
    return [0, max(r["count"] for r in rows) * 1.12 or 1]


@cache
def _histogram_template(at_risk: float, healthy: float) -> str:
    # which segments appear, their labels and the thresholds depend on these two alone
    rows = _histogram_rows(dict.fromkeys(range(10), 0), at_risk, healthy)
    return json.dumps(histogram_spec(rows, at_risk, healthy))  # never handed out: copied


def _filled(rows: list[dict[str, Any]], at_risk: float, healthy: float) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(_histogram_template(at_risk, healthy))
    bars = spec["layer"][1]  # rules, bars, text: as histogram_spec layers them
    bars["encoding"]["y"]["scale"]["domain"] = _count_domain(rows)
    spec["datasets"] = _histogram_data(rows, at_risk, healthy)
    return spec


def histogram(
    scores: pl.Series, cfg: Config, name: str = "score-distribution", whose: str = ""
) -> ChartSpec:
    """Draw the 10-point score histogram, each bar in its segment's colour, counts above."""
    bins = (scores.drop_nulls() // 10).clip(0, 9).cast(pl.Int64).value_counts()
    counts = dict.fromkeys(range(10), 0) | dict(bins.iter_rows())
    seg = cfg.scoring.segments
    rows = _histogram_rows(counts, seg.at_risk, seg.healthy)
    total = sum(counts.values())
    who = f"{whose} " if whose else ""
    alt_text = (
        f"Histogram of the health scores of {total:,} {who}accounts in 10-point bins: "
        + ", ".join(f"{r['lo']}–{r['hi']}: {r['count']:,}" for r in rows if r["count"])
        + f". At risk below {seg.at_risk:g}, healthy from {seg.healthy:g}."
    )
    caption = f"Scores of {who}accounts" if who else "Score distribution"
    spec = _filled(rows, seg.at_risk, seg.healthy)
    return {
        "name": name,
        "caption": caption,
        "alt": alt_text,
        "spec": spec,
        "facts": {"total": total},
        "svg": "",
    }


def _nice_range(values: list[float]) -> tuple[float, float]:
    lo = max(0.0, math.floor((min(values) - 2) / 5) * 5)
    hi = min(100.0, math.ceil((max(values) + 2) / 5) * 5)
    if hi - lo < 10:
        lo, hi = max(0.0, hi - 10), max(hi, lo + 10)
    return lo, hi


def _date_axis(weeks: int) -> Any:
    # a label every month or so: readable dates along the whole axis, never colliding
    return alt.Axis(
        format="%d %b %Y" if weeks <= 6 else "%b %Y",
        tickCount={"interval": "week", "step": 1}
        if weeks <= 6
        else {"interval": "month", "step": 1 if weeks <= 30 else 2},
        labelAngle=0,
        grid=False,
    )


MARK = "#6a3d9a"  # Okabe-Ito has no purple: the config-change marks, apart from every segment


def trend_chart(
    points: list[tuple[str, float | None]],
    cfg: Config,
    marks: Sequence[tuple[str, str]] = (),
) -> ChartSpec | None:
    """Draw the mean score per week as a line, with the segment thresholds (two weeks on).

    ``marks`` are ``(as_of, label)`` of the weeks whose scoring config changed: a dashed purple
    rule each (SPEC 10.3: the report marks weeks where the config hash changed).
    """
    pts = [(d, v) for d, v in points if v is not None]
    if len(pts) < 2:
        return None
    lo, hi = _nice_range([v for _, v in pts])
    rows = [{"as_of": d, "mean": round(v, 1)} for d, v in pts]
    seg = cfg.scoring.segments
    refs = [
        {"y": t, "label": label, "colour": SEGMENT_COLOURS[k], "ink": SEGMENT_INK[k]}
        for k, t, label in (
            ("healthy", seg.healthy, f"healthy ≥ {seg.healthy:g}"),
            ("at_risk", seg.at_risk, f"at risk < {seg.at_risk:g}"),
        )
        if lo <= t <= hi
    ]
    x = alt.X("as_of:T", title="Week ending", axis=_date_axis(len(pts)))
    y = alt.Y("mean:Q", title="Mean score", scale=alt.Scale(domain=[lo, hi], nice=False))
    line = (
        alt.Chart(_data("points"))
        .mark_line(color=LINE, strokeWidth=2, point=alt.OverlayMarkDef(color=LINE, size=24))
        .encode(x=x, y=y)
    )
    layers: list[Any] = [line]
    if refs:
        ref = alt.Chart(_data("thresholds"))
        layers.insert(
            0,
            ref.mark_rule(strokeDash=[4, 3]).encode(
                y="y:Q", color=alt.Color("colour:N", scale=None)
            ),
        )
        layers.append(
            ref.mark_text(align="left", dx=4, fontSize=11, fontWeight=600).encode(
                y="y:Q",
                x=alt.value(WIDTH - 90),
                text="label:N",
                color=alt.Color("ink:N", scale=None),
            )
        )
    shown = {d for d, _ in pts}
    changed = [{"as_of": d, "label": label} for d, label in marks if d in shown]
    if changed:
        layers.append(
            alt.Chart(_data("config_marks"))
            .mark_rule(color=MARK, strokeDash=[2, 2], strokeWidth=1.5)
            .encode(x="as_of:T", tooltip="label:N")
            .properties(name="config_mark")
        )
    chart = alt.layer(*layers).properties(width=WIDTH - 90, height=170)
    first, last = pts[0], pts[-1]
    low, high = min(v for _, v in pts), max(v for _, v in pts)
    alt_text = (
        f"Line chart of the mean health score per week, {len(pts)} weeks from {first[0]} "
        f"({first[1]:.1f}) to {last[0]} ({last[1]:.1f}); lowest {low:.1f}, highest {high:.1f}."
        + (f" The scoring config changed in {len(changed)} of these weeks." if changed else "")
    )
    caption = f"Mean score per week, {first[0]} to {last[0]} ({len(pts)} weeks)"
    return _chart(
        "trend",
        caption,
        alt_text,
        chart,
        {"points": rows, "thresholds": refs, "config_marks": changed},
        weeks=len(pts),
        first_date=first[0],
        last_date=last[0],
        last=f"{last[1]:.1f}",
        lo=f"{low:.1f}",
        hi=f"{high:.1f}",
    )


def segment_mix_chart(history: Sequence[Mapping[str, Any]]) -> ChartSpec | None:
    """Draw the share of accounts in each segment per week, stacked (two weeks on)."""
    weeks = [k for k in history if sum((k.get("accounts_by_segment") or {}).values())]
    if len(weeks) < 2:
        return None
    rows = []
    for k in weeks:
        counts = k["accounts_by_segment"]
        total = sum(counts.values())
        for order, s in enumerate(STACK_ORDER):
            n = counts.get(s, 0)
            rows.append(
                {
                    "as_of": k["as_of"],
                    "segment": SEGMENT_LABELS[s],
                    "share": n / total,
                    "order": order,
                }
            )
    legend = ("healthy", "neutral", "at_risk", "insufficient_data")
    chart = (
        alt.Chart(_data("shares"))
        .mark_area(opacity=1, interpolate="step-after")
        .encode(
            x=alt.X("as_of:T", title="Week ending", axis=_date_axis(len(weeks))),
            y=alt.Y(
                "share:Q",
                title="Share of accounts",
                stack="normalize",
                axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1]),
            ),
            color=alt.Color(
                "segment:N",
                scale=_segment_scale(legend, SEGMENT_LABELS),
                sort=[SEGMENT_LABELS[s] for s in legend],
                title=None,
            ),
            order=alt.Order("order:Q"),
        )
        .properties(width=WIDTH, height=150)
    )
    last = weeks[-1]
    total = sum(last["accounts_by_segment"].values())
    alt_text = (
        f"Stacked area chart of the share of accounts per segment over {len(weeks)} weeks, "
        f"{weeks[0]['as_of']} to {last['as_of']}; in the last week "
        + ", ".join(
            f"{SEGMENT_LABELS[s]} {100 * last['accounts_by_segment'].get(s, 0) / total:.0f}%"
            for s in legend
        )
        + "."
    )
    return _chart(
        "segment-mix",
        "Accounts per segment per week",
        alt_text,
        chart,
        {"shares": rows},
        weeks=len(weeks),
    )


_SVG_OPEN = re.compile(r"<svg\b")
_lock = threading.Lock()
_lanes: dict[str, ThreadPoolExecutor] = {}
_renders = [0]  # Vega renders of a spec in this process (tests count them; never reset)
_WARM_SPEC = {
    "data": {"values": [{"a": 1}]},
    "mark": "point",
    "encoding": {"x": {"field": "a", "type": "quantitative"}},
}


def _lane(name: str) -> ThreadPoolExecutor:
    # Two worker threads, each with its own queue: "report" draws the report's SVGs (and
    # rasterises them for the stakeholder e-mail), "mail" the digests' histograms, so the
    # report never waits behind a queue of digest images. vl-convert renders one spec at a time
    # and releases the GIL meanwhile, so a run goes on computing while its charts are drawn.
    with _lock:
        if not _lanes:
            _lanes["report"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chs-charts")
            _lanes["mail"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chs-mail")
            _lanes["report"].submit(vl_convert.vegalite_to_svg, _WARM_SPEC)  # the ~1 s start
        return _lanes[name]


def warm_up() -> None:
    """Start vl-convert's JavaScript engine in the background; calling it again does nothing."""
    _lane("report")


def vega_renders() -> int:
    """Return how many chart specs vl-convert has rendered in this process (the engine's own
    warm-up not counted).
    """
    return _renders[0]


def _render(spec: dict[str, Any]) -> str:
    with _lock:
        _renders[0] += 1
    return str(vl_convert.vegalite_to_svg(spec))


def _svg(chart: ChartSpec) -> str:
    svg = _render(chart["spec"])
    label = chart["alt"].replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    svg = svg.replace(' class="marks"', "", 1)
    return _SVG_OPEN.sub(f'<svg role="img" aria-label="{label}" class="chart"', svg, count=1)


def _raster(svg: str) -> bytes:
    # resvg only, no second Vega render: the same bytes as vegalite_to_png of the spec
    return bytes(vl_convert.svg_to_png(svg, scale=PNG_SCALE))


def _png(chart: ChartSpec) -> bytes:
    return _raster(chart["svg"] or _render(chart["spec"]))


def submit_svg(chart: ChartSpec) -> Future[str]:
    """Start exporting a chart as an inline SVG element (labelled for screen readers)."""
    return _lane("report").submit(_svg, chart)


def submit_png(chart: ChartSpec) -> Future[bytes]:
    """Start exporting a chart as a PNG image at twice its CSS size, for an e-mail.

    A chart whose SVG the report already has is only rasterised (on the report's lane); any
    other is rendered on the e-mails' own lane.
    """
    return _lane("report" if chart["svg"] else "mail").submit(_png, chart)


def to_svg(chart: ChartSpec) -> str:
    """Export a chart as an inline SVG element, labelled for screen readers."""
    return submit_svg(chart).result()


def to_png(chart: ChartSpec) -> bytes:
    """Export a chart as a PNG image (twice its CSS size) for an e-mail."""
    return submit_png(chart).result()
