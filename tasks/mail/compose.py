"""The e-mails of one run: the stakeholder report and one digest per CSM (scores -> messages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import polars as pl

from tasks.actions import PRIORITY_ORDER
from tasks.config import Config
from tasks.mail.charts import histogram_png, segment_bar_png, trend_png
from tasks.mail.message import Chart, build_message, safe_csv, valid_address
from tasks.report.charts import histogram
from tasks.report.context import ReportContext
from tasks.report.format import ALL_SEGMENTS, SEGMENT_COLOURS, SEGMENT_LABELS


def _csm(scores: pl.DataFrame) -> pl.Expr:
    # one digest per person however the CRM spells their address
    if "csm_email" not in scores.columns:
        return pl.lit(None, pl.String).alias("csm_email")
    return pl.col("csm_email").str.strip_chars().str.to_lowercase()


def _action_rows(scores: pl.DataFrame, actions: pl.DataFrame) -> pl.DataFrame:
    cols = [
        c
        for c in ("account_id", "name", "arr", "score", "segment", "score_delta_1w", "top_drivers")
        if c in scores.columns
    ]
    rank = pl.col("priority").replace_strict(PRIORITY_ORDER, default=len(PRIORITY_ORDER))
    return (
        actions.join(scores.select(*cols, _csm(scores)), on="account_id", how="left")
        .with_columns(rank.alias("_rank"))
        .sort("_rank", "arr", "due_date", descending=[False, True, False], nulls_last=True)
        .drop("_rank")
    )


_LIST_COLUMNS = (
    "account_id",
    "name",
    "csm_email",
    "arr",
    "score",
    "segment",
    "score_delta_1w",
    "top_drivers",
    "renewal_date",
)


def _segment_counts(scores: pl.DataFrame) -> list[dict[str, Any]]:
    seg = scores.with_columns(pl.col("segment").fill_null("insufficient_data"))
    agg = {
        r["segment"]: r
        for r in seg.group_by("segment")
        .agg(pl.len().alias("count"), pl.col("arr").sum().alias("arr"))
        .iter_rows(named=True)
    }
    return [
        {
            "key": s,
            "label": SEGMENT_LABELS[s],
            "colour": SEGMENT_COLOURS[s],
            "count": agg.get(s, {}).get("count", 0),
            "arr": agg.get(s, {}).get("arr") or 0.0,
            "delta": None,
        }
        for s in ALL_SEGMENTS
    ]


def _stakeholder_charts(context: ReportContext) -> list[Chart]:
    hist = context["histogram"]
    charts = [
        Chart(
            "score-distribution",
            "Score distribution",
            histogram_png(hist),
            f"Histogram of the health scores of {hist['total']} accounts, coloured by segment",
            hist["width"],
            hist["height"],
        ),
        Chart(
            "segments",
            "Share of accounts per segment",
            segment_bar_png(context["segments"]),
            "Share of accounts per segment: "
            + ", ".join(f"{s['label']} {s['share']}" for s in context["segments"]),
            560,
            28,
        ),
    ]
    trend = context.get("trend")
    if trend:
        charts.append(
            Chart(
                "trend",
                f"Mean score per week ({trend['weeks']} weeks)",
                trend_png(trend),
                f"Mean score per week from {trend['first_date']} to {trend['last_date']}, "
                f"now {trend['last']['value']}",
                trend["width"],
                trend["height"],
            )
        )
    return charts


@dataclass
class Emails:
    """The messages of one run, and the recipients left out because their address is unusable."""

    messages: list[tuple[str, EmailMessage]]
    skipped: list[str] = field(default_factory=list)


def _stakeholder_email(
    scores: pl.DataFrame,
    rows: pl.DataFrame,
    context: ReportContext,
    cfg: Config,
    sender: str,
    to: list[str],
) -> EmailMessage:
    as_of, seg = context["as_of"], {s["key"]: s for s in context["segments"]}
    attachments = {
        f"{s}-{as_of}.csv": safe_csv(
            scores.filter(pl.col("segment").fill_null("insufficient_data") == s).select(
                [c for c in _LIST_COLUMNS if c in scores.columns]
            )
        )
        for s in ALL_SEGMENTS
        if s != "insufficient_data" or seg[s]["count"]
    }
    urgent = rows.filter(pl.col("priority").is_in(["urgent", "high"])).head(cfg.report.top_n)
    subject = (
        f"{cfg.report.title} {as_of}: {seg['at_risk']['count']:,} at risk "
        f"({context['at_risk_arr']} ARR), {seg['healthy']['count']:,} healthy, "
        f"{context['actions_total']:,} actions"
    )
    ctx = {
        **context,
        "heading": f"{cfg.report.title} — week ending {as_of}",
        "intro": "The full report is report.html in this run's output folder; "
        "the segment lists are attached as CSV.",
        "list_title": f"Most urgent actions ({urgent.height} of {rows.height:,})",
        "rows": urgent.to_dicts(),
        "footer": "Sent by the Customer Health Score pipeline.",
        "voice_rows": [],  # the report's voice block lists them all
    }
    return build_message(sender, to, subject, ctx, attachments, _stakeholder_charts(context))


def own_voice(context: ReportContext, own: pl.DataFrame) -> list[dict[str, Any]]:
    """Return the CSM's accounts with text evidence (tasks/text/evidence.py), at most 10."""
    ids = set(own["account_id"].to_list())
    voice = context.get("voice") or {}
    return [a for a in voice.get("accounts", []) if a["account_id"] in ids][:10]


def _digest_email(
    own: pl.DataFrame,
    part: pl.DataFrame,
    address: str,
    context: ReportContext,
    cfg: Config,
    sender: str,
) -> EmailMessage:
    as_of = context["as_of"]
    segments = _segment_counts(own)
    n_accounts = part["account_id"].n_unique()
    at_risk = own.filter(pl.col("segment") == "at_risk").height
    hist = histogram(own["score"], cfg)
    shown = part.head(cfg.report.top_n)
    subject = (
        f"Your accounts needing action, week ending {as_of}: "
        f"{n_accounts} accounts, {at_risk} at risk"
    )
    ctx = {
        "heading": "Your accounts that need action",
        "as_of": as_of,
        "intro": f"Week ending {as_of}. Only your own {own.height} accounts are included.",
        "summary": [
            {
                "tone": "bad" if at_risk else "info",
                "text": f"{n_accounts} of your accounts have {part.height} recommended actions; "
                f"{at_risk} are at risk.",
            }
        ],
        "headline": None,
        "segments": segments,
        "list_title": f"Actions, most urgent first ({shown.height} of {part.height}"
        + ("; the attached CSV has them all)" if shown.height < part.height else ")"),
        "rows": shown.to_dicts(),
        "footer": "You receive this because you are the CSM of these accounts.",
        "voice_rows": own_voice(context, own),
    }
    charts = [
        Chart(
            "your-scores",
            "Scores of your accounts",
            histogram_png(hist),
            f"Histogram of the health scores of your {hist['total']} scored accounts",
            hist["width"],
            hist["height"],
        )
    ]
    return build_message(
        sender,
        [address],
        subject,
        ctx,
        {f"actions-{as_of}.csv": safe_csv(part.drop("csm_email"))},
        charts,
    )


def build_emails(
    scores: pl.DataFrame,
    actions: pl.DataFrame,
    context: ReportContext,
    cfg: Config,
    sender: str,
) -> Emails:
    """Build the stakeholder e-mail and one digest per CSM with accounts that need action."""
    out = Emails([])
    rows = _action_rows(scores, actions)
    good = [r.strip() for r in cfg.report.recipients if valid_address(r.strip())]
    out.skipped += [r for r in cfg.report.recipients if not valid_address(r.strip())]
    if good:
        out.messages.append(
            ("stakeholders", _stakeholder_email(scores, rows, context, cfg, sender, good))
        )
    if not cfg.report.csm_digests:
        return out
    owned = scores.with_columns(_csm(scores)).partition_by("csm_email", as_dict=True)
    for (address,), part in rows.filter(pl.col("csm_email").is_not_null()).group_by(
        "csm_email", maintain_order=True
    ):
        if not valid_address(str(address)):
            out.skipped.append(str(address))
            continue
        own = owned[(address,)]
        message = _digest_email(own, part, str(address), context, cfg, sender)
        out.messages.append((f"digest-{address}", message))
    return out
