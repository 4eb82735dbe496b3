"""One account page's finished values: history, points lost, changes, actions, voices, tickets.

``PageData`` splits the run's frames by account once; ``page_context`` then assembles one page
from its slices, so a run of hundreds of pages does no per-page scan of a whole frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl
from markupsafe import Markup

from tasks.config import Config
from tasks.lifecycle import LIVE
from tasks.report.accounts.history import SERIES_COLUMNS
from tasks.report.accounts.phrases import describe, label
from tasks.report.accounts.svg import Mark, history_svg, sparkline_svg, waterfall_svg
from tasks.report.format import SEGMENT_LABELS, fmt_num, fmt_signed, money
from tasks.schemas import DIMENSIONS

WATERFALL_STEPS = 10  # measures drawn one by one; the rest are one "other measures" step
COMMENTS_SHOWN = 5
TICKETS_SHOWN = 20
STATUS_WORDS = {
    "open": "Open",
    "in_progress": "In progress",
    "snoozed": "Snoozed",
    "deferred": "Deferred (owner at capacity)",
    "holdout": "Held out (control group)",
    "done": "Done",
    "dismissed": "Dismissed",
    "expired": "Expired",
}
_STATUS_ORDER = {s: i for i, s in enumerate(STATUS_WORDS)}


def _by_account(df: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    if df is None or df.is_empty():
        return {}
    return {str(k[0]): part for k, part in df.partition_by("account_id", as_dict=True).items()}


@dataclass
class PageData:
    """The run's frames, split by account once for every page of the run."""

    cfg: Config
    as_of: date
    scored: dict[str, dict[str, Any]]  # account_id -> this run's row
    series: dict[str, dict[str, list[Any]]]  # ... its stored weeks: column -> values
    prev: dict[str, dict[str, Any]]  # ... last week's stored row (contributions included)
    actions: dict[str, pl.DataFrame]
    comments: dict[str, pl.DataFrame]
    tickets: dict[str, pl.DataFrame]
    children: dict[str, pl.DataFrame]  # parent id -> its children's rows of this run
    rollup: dict[str, dict[str, Any]]  # parent id -> its scores_rollup row
    marks: list[Mark] = field(default_factory=list)
    hrefs: Mapping[str, str] = field(default_factory=dict)  # account_id -> its page file
    # account_id -> the texts behind a text signal that moved its score or fired an action
    # (the report's ``voice.accounts``, tasks/text/evidence.py); empty without a text source
    voice: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        cfg: Config,
        as_of: date,
        frames: Mapping[str, pl.DataFrame | None],
        ids: list[str],
        marks: list[Mark],
        hrefs: Mapping[str, str],
        voice: list[dict[str, Any]] | None = None,
    ) -> PageData:
        """Split ``frames`` (scored, series, prev, actions, surveys, tickets, accounts,
        rollup) by account, keeping only what the pages of ``ids`` show.
        """
        keep = pl.Series(ids, dtype=pl.String).implode()
        listed = set(ids)  # once: built per text it made the split quadratic in accounts

        def mine(name: str) -> pl.DataFrame | None:
            df = frames.get(name)
            return None if df is None else df.filter(pl.col("account_id").is_in(keep))

        scored = frames["scored"]
        assert scored is not None
        return cls(
            cfg=cfg,
            as_of=as_of,
            scored=_rows(scored.filter(pl.col("account_id").is_in(keep))),
            series=_series(mine("series")),
            prev=_rows(mine("prev")),
            actions=_by_account(mine("actions")),
            comments=_by_account(_recent_comments(mine("surveys"), as_of, cfg.windows.survey_days)),
            tickets=_by_account(_open_tickets(mine("tickets"), as_of)),
            children=_children(frames.get("accounts"), scored, keep),
            rollup=_rows(mine("rollup")),
            marks=marks,
            hrefs=hrefs,
            voice={v["account_id"]: v for v in voice or [] if v["account_id"] in listed},
        )


def _rows(df: pl.DataFrame | None) -> dict[str, dict[str, Any]]:
    return {} if df is None else {r["account_id"]: r for r in df.to_dicts()}


def _day_end(as_of: date) -> datetime:
    return datetime.combine(as_of + timedelta(days=1), time())


def _recent_comments(surveys: pl.DataFrame | None, as_of: date, days: int) -> pl.DataFrame | None:
    if surveys is None or "comment" not in surveys.columns:
        return None
    start = datetime.combine(as_of - timedelta(days=days), time())
    return surveys.filter(
        pl.col("comment").str.strip_chars().str.len_chars().gt(0)
        & pl.col("submitted_at").is_between(start, _day_end(as_of), closed="left")
    ).sort("submitted_at", descending=True)


def _open_tickets(tickets: pl.DataFrame | None, as_of: date) -> pl.DataFrame | None:
    if tickets is None:
        return None
    end = _day_end(as_of)
    unresolved = pl.col("resolved_at").is_null() | (pl.col("resolved_at") >= end)
    return tickets.filter((pl.col("opened_at") < end) & unresolved).sort("opened_at")


def _children(
    accounts: pl.DataFrame | None, scored: pl.DataFrame, keep: pl.Expr | pl.Series
) -> dict[str, pl.DataFrame]:
    if accounts is None or "parent_account_id" not in accounts.columns:
        return {}
    links = accounts.select("account_id", "parent_account_id").filter(
        pl.col("parent_account_id").is_in(keep)
    )
    cols = [c for c in ("account_id", "name", "score", "segment", "arr") if c in scored.columns]
    rows = links.join(scored.select(cols), on="account_id", how="left").sort(
        "score", nulls_last=True
    )
    return {
        str(k[0]): part.drop("parent_account_id")
        for k, part in rows.partition_by("parent_account_id", as_dict=True).items()
    }


def _series(series: pl.DataFrame | None) -> dict[str, dict[str, list[Any]]]:
    """Return each account's stored weeks as one list per column (one pass, not per page)."""
    if series is None or series.is_empty():
        return {}
    lists = series.group_by("account_id").agg(
        pl.col("as_of").dt.strftime("%Y-%m-%d"), *[pl.col(c) for c in SERIES_COLUMNS[2:]]
    )
    return {r["account_id"]: r for r in lists.to_dicts()}


def _history(data: PageData, row: dict[str, Any]) -> dict[str, Any]:
    past = data.series.get(row["account_id"], {})
    dates = [*past.get("as_of", []), data.as_of.isoformat()]
    cols = {c: [*past.get(c, []), row.get(c)] for c in SERIES_COLUMNS[2:]}
    seg = data.cfg.scoring.segments
    name = row.get("name") or row["account_id"]
    # numbers and ISO dates only, so the table's rows are built here: 52 rows of 8 cells
    # through the template's filters were half of each page's rendering time
    cells = [[f"<td>{d}</td>" for d in dates]]
    cells += [
        [f'<td class="num">{fmt_num(v, 1 if c == "score" else 0)}</td>' for v in values]
        for c, values in cols.items()
    ]
    return {
        "weeks": len(dates),
        "rows": [Markup("".join(week)) for week in zip(*cells, strict=True)],
        "chart": history_svg(
            dates,
            cols["score"],
            data.marks,
            (seg.at_risk, seg.healthy),
            f"Health score of {name} per week from {dates[0]} to {dates[-1]}",
        ),
        "dimensions": [
            {
                "name": d,
                "value": fmt_num(row.get(d)),
                "chart": sparkline_svg(cols[d], f"{d} per week"),
            }
            for d in DIMENSIONS
        ],
        "marks": [m.label for m in data.marks if m.as_of >= dates[0]],
    }


def _measures(data: PageData, row: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in data.cfg.scoring.measures:
        points = row.get(f"m_{m.name}")
        out.append(
            {
                "name": m.name,
                "label": label(m.name),
                "dimension": m.dimension,
                "words": describe(m.name, row.get(m.source), row, data.cfg.windows),
                "points": points,
                "lost": float(row.get(f"lost_{m.name}") or 0.0),
                "has_data": points is not None,
            }
        )
    return out


def _waterfall(measures: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    computed = row.get("computed_score", row.get("score"))
    if computed is None:
        return None
    costly = sorted((m for m in measures if m["lost"] > 0), key=lambda m: -m["lost"])
    steps = [(f"{m['label']} ({m['dimension']})", m["lost"]) for m in costly[:WATERFALL_STEPS]]
    rest = costly[WATERFALL_STEPS:]
    if rest:
        steps.append((f"{len(rest)} other measures", sum(m["lost"] for m in rest)))
    total = sum(lost for _, lost in steps)
    return {
        "steps": [{"label": lab, "lost": round(lost, 2)} for lab, lost in steps],
        "lost_total": round(total, 2),
        "score": round(float(computed), 2),
        "chart": waterfall_svg(
            steps, float(computed), f"Points lost per measure: 100 down to {computed:.1f}"
        ),
    }


def _changes(data: PageData, row: dict[str, Any]) -> dict[str, Any] | None:
    prev = data.prev.get(row["account_id"])
    if prev is None:
        return None
    dims = [
        {"name": d, "delta": fmt_signed(row[d] - prev[d])}
        for d in DIMENSIONS
        if row.get(d) is not None and prev.get(d) is not None
    ]
    measures = []
    for m in data.cfg.scoring.measures:
        now, before = row.get(f"c_{m.name}"), prev.get(f"c_{m.name}")
        if now is None or before is None or abs(now - before) < 0.05:
            continue
        measures.append(
            {
                "label": label(m.name),
                "delta": now - before,
                "text": fmt_signed(now - before),
                "words": describe(m.name, row.get(m.source), row, data.cfg.windows),
            }
        )
    measures.sort(key=lambda m: -abs(m["delta"]))
    return {
        "as_of": prev["as_of"].isoformat() if prev.get("as_of") else "last week",
        "score_delta": fmt_signed(row.get("score_delta_1w")),
        "dimensions": dims,
        "measures": measures,
    }


def _actions(data: PageData, account: str) -> list[dict[str, Any]]:
    df = data.actions.get(account)
    if df is None:
        return []
    rows = sorted(
        df.to_dicts(),
        key=lambda r: (_STATUS_ORDER.get(r.get("status") or "", 99), str(r.get("due_date"))),
    )
    return [
        {
            **r,
            "status_label": STATUS_WORDS.get(r.get("status") or "", r.get("status") or "–"),
            "live": (r.get("status") or "") in LIVE,
        }
        for r in rows
    ]


def _override(row: dict[str, Any]) -> dict[str, Any] | None:
    if row.get("override_reason") is None:
        return None
    return {
        "score": fmt_num(row.get("score")),
        "computed": fmt_num(row.get("computed_score")),
        "segment": SEGMENT_LABELS.get(row.get("segment") or "insufficient_data", ""),
        "computed_segment": SEGMENT_LABELS.get(
            row.get("computed_segment") or "insufficient_data", ""
        ),
        "reason": row["override_reason"],
        "author": row.get("override_author") or "a CSM",
        "expires": str(row.get("override_expires") or "no end date"),
    }


def _slice_rows(df: pl.DataFrame | None, n: int) -> tuple[list[dict[str, Any]], int]:
    if df is None:
        return [], 0
    return df.head(n).to_dicts(), max(0, df.height - n)


def page_context(data: PageData, account: str) -> dict[str, Any]:
    """Assemble everything the page of ``account`` shows, computed and formatted."""
    row = data.scored[account]
    measures = _measures(data, row)
    comments, more_comments = _slice_rows(data.comments.get(account), COMMENTS_SHOWN)
    tickets, more_tickets = _slice_rows(data.tickets.get(account), TICKETS_SHOWN)
    kids = data.children.get(account)
    return {
        "title": data.cfg.report.title,
        "as_of": data.as_of.isoformat(),
        "account": {
            **row,
            "label": row.get("name") or account,
            "segment_label": SEGMENT_LABELS.get(row.get("segment") or "insufficient_data", ""),
            "arr_text": money(row.get("arr")),
        },
        "history": _history(data, row),
        "measures": measures,
        "waterfall": _waterfall(measures, row),
        "changes": _changes(data, row),
        "actions": _actions(data, account),
        "override": _override(row),
        "comments": comments,
        "comments_more": more_comments,
        "tickets": [{**t, "age_days": (data.as_of - t["opened_at"].date()).days} for t in tickets],
        "tickets_more": more_tickets,
        "voice": data.voice.get(account),
        "rollup": data.rollup.get(account),
        "children": [
            {**c, "href": data.hrefs.get(c["account_id"])}
            for c in (kids.to_dicts() if kids is not None else [])
        ],
    }
