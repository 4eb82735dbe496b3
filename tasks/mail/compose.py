"""The e-mails of one run: the stakeholder report and one digest per CSM (scores -> messages)."""

from __future__ import annotations

import struct
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.message import EmailMessage
from typing import Any

import polars as pl

from tasks.actions import PRIORITY_ORDER
from tasks.config import Config
from tasks.csvfile import csv_bytes
from tasks.mail.digest import digest_sections, sectioned
from tasks.mail.message import Chart, build_message, valid_address
from tasks.report.charts import PNG_SCALE, ChartSpec, histogram, submit_png
from tasks.report.context import ReportContext
from tasks.report.format import ALL_SEGMENTS, SEGMENT_COLOURS, SEGMENT_LABELS
from tasks.text.evidence import DIGEST_ROWS


def _csm(scores: pl.DataFrame) -> pl.Expr:
    # one digest per person however the CRM spells their address
    if "csm_email" not in scores.columns:
        return pl.lit(None, pl.String).alias("csm_email")
    return pl.col("csm_email").str.strip_chars().str.to_lowercase()


def _action_rows(scores: pl.DataFrame, actions: pl.DataFrame) -> pl.DataFrame:
    # what the actions lack, from the scores: a column both carry (the action's own ARR at
    # risk, say) stays the action's, so the digest CSV has no ``arr_right``
    cols = [
        c
        for c in ("name", "arr", "score", "segment", "score_delta_1w", "top_drivers")
        if c in scores.columns and c not in actions.columns
    ]
    csm = [_csm(scores)] if "csm_email" not in actions.columns else []
    rank = pl.col("priority").replace_strict(PRIORITY_ORDER, default=len(PRIORITY_ORDER))
    return (
        actions.join(scores.select("account_id", *cols, *csm), on="account_id", how="left")
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


ATTACHMENTS = "attachments"  # the date's folder for the CSVs too large to attach


def _chart(spec: ChartSpec, png: Future[bytes]) -> Chart:
    data = png.result()
    width, height = struct.unpack(">II", data[16:24])  # the PNG's IHDR chunk
    return Chart(
        spec["name"], spec["caption"], data, spec["alt"], width // PNG_SCALE, height // PNG_SCALE
    )


def _report_charts(context: ReportContext) -> list[ChartSpec]:
    # the e-mail shows every chart the report has, in the same order
    found = (context["histogram"], context.get("trend"), context.get("segment_mix"))
    return [c for c in found if c is not None]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


@dataclass
class Budgeted:
    """CSVs within the e-mail's size budget, and those written to the date's folder instead."""

    attached: dict[str, bytes]
    files: dict[str, bytes]  # path in the date's folder -> content
    note: str | None  # the line telling where the files are


def within_budget(csvs: dict[str, bytes], cfg: Config, as_of: str, what: str) -> Budgeted:
    """Attach the CSVs while their total stays within ``[email] attach_max_bytes``.

    The first one that would go over the limit, and every one after it, is written to
    ``<output dir>/<date>/attachments/`` instead, and the message says where.
    """
    limit, used = cfg.email.attach_max_bytes, 0
    attached: dict[str, bytes] = {}
    files: dict[str, bytes] = {}
    for name, data in csvs.items():
        if not files and used + len(data) <= limit:
            attached[name] = data
            used += len(data)
        else:
            files[f"{ATTACHMENTS}/{name}"] = data
    if not files:
        return Budgeted(attached, files, None)
    folder = cfg.out_dir / as_of / ATTACHMENTS
    size = sum(len(d) for d in files.values())
    names = ", ".join(n.rpartition("/")[2] for n in files)
    note = (
        f"Not attached, to keep this e-mail small ({_mb(size)} over the limit of "
        f"{_mb(limit)}, [email] attach_max_bytes): {what} {names}, in {folder}."
    )
    return Budgeted(attached, files, note)


@dataclass
class Emails:
    """The messages of one run, the recipients left out because their address is unusable, and
    the files too large to attach (paths in the date's folder).
    """

    messages: list[tuple[str, EmailMessage]]
    skipped: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


def _stakeholder_email(
    scores: pl.DataFrame,
    rows: pl.DataFrame,
    context: ReportContext,
    cfg: Config,
    sender: str,
    to: list[str],
    charts: list[tuple[ChartSpec, Future[bytes]]],
) -> tuple[EmailMessage, dict[str, bytes]]:
    as_of, seg = context["as_of"], {s["key"]: s for s in context["segments"]}
    csvs = {
        f"{s}-{as_of}.csv": csv_bytes(
            scores.filter(pl.col("segment").fill_null("insufficient_data") == s).select(
                [c for c in _LIST_COLUMNS if c in scores.columns]
            ),
            cfg.output.csv_bom,
        )
        for s in ("at_risk", "neutral", "healthy", "insufficient_data")  # most needed first
        if s != "insufficient_data" or seg[s]["count"]
    }
    budget = within_budget(csvs, cfg, as_of, "the segment lists")
    urgent = rows.filter(pl.col("priority").is_in(["urgent", "high"])).head(cfg.report.top_n)
    subject = (
        f"{cfg.report.title} {as_of}: {seg['at_risk']['count']:,} at risk "
        f"({context['at_risk_arr']} ARR), {seg['healthy']['count']:,} healthy, "
        f"{context['actions_total']:,} actions"
    )
    ctx = {
        **context,
        "heading": f"{cfg.report.title} — week ending {as_of}",
        "intro": "The full report is report.html in this run's output folder"
        + ("; the segment lists are attached as CSV." if budget.attached else "."),
        "attach_note": budget.note,
        "list_title": f"Most urgent actions ({urgent.height} of {rows.height:,})",
        "rows": urgent.to_dicts(),
        "sections": None,
        "footer": "Sent by the Customer Health Score pipeline.",
        "voice_rows": [],  # the report's voice block lists them all
    }
    images = [_chart(spec, png) for spec, png in charts]
    return build_message(sender, to, subject, ctx, budget.attached, images), budget.files


def own_voice(context: ReportContext, own: pl.DataFrame) -> list[dict[str, Any]]:
    """Return the CSM's accounts with text evidence (tasks/text/evidence.py), at most 10."""
    ids = set(own["account_id"].to_list())
    voice = context.get("voice") or {}
    return [a for a in voice.get("accounts", []) if a["account_id"] in ids][:DIGEST_ROWS]


def _digest_email(
    own: pl.DataFrame,
    part: pl.DataFrame,
    address: str,
    context: ReportContext,
    cfg: Config,
    sender: str,
    chart: tuple[ChartSpec, Future[bytes]],
) -> tuple[EmailMessage, dict[str, bytes]]:
    as_of = context["as_of"]
    sections = digest_sections(part, cfg.report.top_n)
    count = {s["key"]: s["count"] for s in sections}
    work = part.filter(pl.col("section").is_in(["new", "carried", "overdue", "deferred"]))
    n_accounts = work["account_id"].n_unique()
    at_risk = own.filter(pl.col("segment") == "at_risk").height
    subject = (
        f"Your accounts needing action, week ending {as_of}: {count['new']} new, "
        f"{count['overdue']} overdue, {at_risk} accounts at risk"
    )
    csv_name = f"actions-{as_of}.csv"
    budget = within_budget(
        {csv_name: csv_bytes(work.drop("csm_email"), cfg.output.csv_bom)},
        cfg,
        as_of,
        f"your actions ({address}):",
    )
    if budget.files:  # one file per CSM in the shared folder
        budget.files = {
            f"{ATTACHMENTS}/actions-{address}-{as_of}.csv": d for d in budget.files.values()
        }
    open_now = count["new"] + count["carried"] + count["overdue"]
    ctx = {
        "heading": "Your accounts that need action",
        "as_of": as_of,
        "intro": f"Week ending {as_of}. Only your own {own.height} accounts are included.",
        "summary": [
            {
                "tone": "bad" if at_risk or count["overdue"] else "info",
                "text": f"{open_now} open actions on {n_accounts} of your accounts: "
                f"{count['new']} new, {count['carried']} carried, {count['overdue']} overdue; "
                f"{count['deferred']} deferred; {count['closed']} closed since the last run. "
                f"{at_risk} of your accounts are at risk.",
            }
        ],
        "headline": None,
        "segments": _segment_counts(own),
        "sections": sections,
        "attach_note": budget.note,
        "list_title": None,
        "rows": [],
        "account_pages": context["account_pages"],
        "footer": "You receive this because you are the CSM of these accounts.",
        "voice_rows": own_voice(context, own),
    }
    message = build_message(sender, [address], subject, ctx, budget.attached, [_chart(*chart)])
    return message, budget.files


Drawn = dict[str, tuple[ChartSpec, "Future[bytes]"]]


def draw_digest_charts(scores: pl.DataFrame, cfg: Config) -> Drawn:
    """Start drawing each CSM's score histogram in the background, by address.

    A run calls this as soon as the scores exist, so the images are ready by the time the
    digests are composed.
    """
    if not cfg.report.csm_digests or "csm_email" not in scores.columns:
        return {}
    people = scores.with_columns(_csm(scores)).filter(pl.col("csm_email").is_not_null())
    out: Drawn = {}
    for (address,), own in people.partition_by("csm_email", as_dict=True).items():
        if valid_address(str(address)):
            spec = histogram(own["score"], cfg, name="your-scores", whose="your")
            out[str(address)] = (spec, submit_png(spec))
    return out


def _since(context: ReportContext) -> date:
    # "closed since the last run": after the previous stored run, or a week back without one
    prev = context.get("prev_as_of")
    as_of = date.fromisoformat(context["as_of"])
    return date.fromisoformat(prev) if prev else as_of - timedelta(days=7)


def build_emails(
    scores: pl.DataFrame,
    actions: pl.DataFrame,
    context: ReportContext,
    cfg: Config,
    sender: str,
    state: pl.DataFrame | None = None,
    drawn: Drawn | None = None,
) -> Emails:
    """Build the stakeholder e-mail and one digest per CSM with actions to show.

    ``actions`` is this week's work; ``state`` (every action the lifecycle knows, when there is
    one) adds the deferred and recently closed ones to the digests; ``drawn`` holds the digests'
    charts when ``draw_digest_charts`` started them earlier. Every chart is drawn in the
    background while the messages are put together.
    """
    out = Emails([])
    rows = _action_rows(scores, actions)
    good = [r.strip() for r in cfg.report.recipients if valid_address(r.strip())]
    out.skipped += [r for r in cfg.report.recipients if not valid_address(r.strip())]
    stake = [(c, submit_png(c)) for c in _report_charts(context)] if good else []
    digests: list[tuple[str, pl.DataFrame, pl.DataFrame, tuple[ChartSpec, Future[bytes]]]] = []
    drawn = drawn if drawn is not None else draw_digest_charts(scores, cfg)
    if cfg.report.csm_digests:
        as_of = date.fromisoformat(context["as_of"])
        shown = sectioned(state if state is not None else actions, as_of, _since(context))
        owned = scores.with_columns(_csm(scores)).partition_by("csm_email", as_dict=True)
        for (address,), part in (
            _action_rows(scores, shown)
            .filter(pl.col("csm_email").is_not_null())
            .group_by("csm_email", maintain_order=True)
        ):
            if not valid_address(str(address)):
                out.skipped.append(str(address))
                continue
            own = owned[(address,)]
            chart = drawn.get(str(address)) or draw_digest_charts(own, cfg)[str(address)]
            digests.append((str(address), own, part, chart))
    if good:
        message, files = _stakeholder_email(scores, rows, context, cfg, sender, good, stake)
        out.messages.append(("stakeholders", message))
        out.files |= files
    for address, own, part, chart in digests:
        message, files = _digest_email(own, part, address, context, cfg, sender, chart)
        out.messages.append((f"digest-{address}", message))
        out.files |= files
    return out
