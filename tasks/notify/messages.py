"""The run's chat messages in each tool's own format: Slack Block Kit and a Teams Adaptive Card.

Each message is first a neutral ``Card`` (title, lines, facts, who to mention), then rendered:
Slack ``{"text", "blocks"}`` (header, section, fields, context; the CSM mentioned as
``<@U123>`` from ``accounts.slack_user_id``) and a Teams ``message`` whose one attachment is an
Adaptive Card 1.4 (TextBlocks and a FactSet; the CSM is named by e-mail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from tasks.config import Config

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
_SLACK_FIELDS = 10  # Slack's limit of fields in one section block
_HEADER_MAX = 150  # Slack's limit of a header's plain text
_TEXT_MAX = 3000  # Slack's limit of a section's text


@dataclass(frozen=True)
class Card:
    """One chat message before it takes a tool's format."""

    label: str  # names the outbox file: summary, drop-A00012, action-A00012, failure
    title: str
    lines: list[str]
    facts: list[tuple[str, str]] = field(default_factory=list)
    slack_user: str | None = None  # the CSM's Slack member id, mentioned in Slack
    csm: str | None = None  # the CSM's e-mail, named in Teams
    footer: str = "Customer Health Score pipeline"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(card: Card) -> dict[str, Any]:
    """Render a card as a Slack incoming-webhook message (Block Kit, with a plain fallback)."""
    body = "\n".join(_slack_escape(x) for x in card.lines)
    if card.slack_user:
        body += f"\nCSM: <@{card.slack_user}>"
    elif card.csm:
        body += f"\nCSM: {_slack_escape(card.csm)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": card.title[:_HEADER_MAX]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body[:_TEXT_MAX]}},
    ]
    if card.facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"}
                    for k, v in card.facts[:_SLACK_FIELDS]
                ],
            }
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(card.footer)}]}
    )
    mention = f" <@{card.slack_user}>" if card.slack_user else ""
    return {"text": f"{card.title}{mention}", "blocks": blocks}


def teams_payload(card: Card) -> dict[str, Any]:
    """Render a card as a Teams webhook message carrying one Adaptive Card (version 1.4)."""
    lines = [*card.lines, *([f"CSM: {card.csm}"] if card.csm else [])]
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": card.title,
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        },
        *({"type": "TextBlock", "text": line, "wrap": True} for line in lines),
    ]
    if card.facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in card.facts]})
    body.append(
        {"type": "TextBlock", "text": card.footer, "isSubtle": True, "size": "Small", "wrap": True}
    )
    content = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": content}],
    }


def render(card: Card, tool: str) -> dict[str, Any]:
    """Render a card for ``slack`` or ``teams``."""
    return slack_payload(card) if tool == "slack" else teams_payload(card)


def _num(v: Any, spec: str = ".0f") -> str:
    return "n/a" if v is None else format(v, spec)


def _text(row: dict[str, Any], key: str) -> str | None:
    v = row.get(key)
    return str(v).strip() or None if v is not None else None


def summary_card(scored: pl.DataFrame, actions: pl.DataFrame, cfg: Config, as_of: date) -> Card:
    """Build the weekly summary for the channel: segments, ARR at risk, drops, new urgent work."""
    seg = scored["segment"].fill_null("insufficient_data").value_counts()
    counts = dict(zip(seg["segment"].to_list(), seg["count"].to_list(), strict=True))
    at_risk = scored.filter(pl.col("segment") == "at_risk")
    arr = at_risk["arr"].sum() if "arr" in scored.columns else None
    drops = int(scored["drop_alert"].sum()) if "drop_alert" in scored.columns else 0
    urgent = new_urgent(actions, as_of).height
    return Card(
        "summary",
        f"{cfg.report.title} — week ending {as_of}",
        [
            f"{scored.height:,} accounts scored: {counts.get('at_risk', 0):,} at risk"
            + (f" ({arr:,.0f} ARR)" if arr is not None else "")
            + f", {drops:,} lost {cfg.scoring.drop_alert:g}+ points this week.",
            f"{actions.height:,} actions to work, {urgent:,} of them new and urgent.",
        ],
        [
            ("Healthy", f"{counts.get('healthy', 0):,}"),
            ("Neutral", f"{counts.get('neutral', 0):,}"),
            ("At risk", f"{counts.get('at_risk', 0):,}"),
            ("Insufficient data", f"{counts.get('insufficient_data', 0):,}"),
        ],
        footer=f"Report: {as_of}/report.html in the run's output folder",
    )


def drop_cards(scored: pl.DataFrame, cfg: Config) -> list[Card]:
    """One alert per account that lost ``[scoring] drop_alert`` points or more in a week."""
    if "drop_alert" not in scored.columns:
        return []
    rows = scored.filter(pl.col("drop_alert")).sort("score_delta_1w", "account_id")
    return [
        Card(
            f"drop-{r['account_id']}",
            f"Score drop: {r.get('name') or r['account_id']} ({r['account_id']})",
            [
                f"The health score fell {_num(r.get('score_delta_1w'), '+.0f')} points in a week "
                f"to {_num(r.get('score'))} ({(r.get('segment') or 'no segment').replace('_', ' ')}).",
                f"What changed most: {r.get('change_drivers') or 'n/a'}.",
            ],
            [("ARR", _num(r.get("arr"), ",.0f")), ("Weakest", r.get("top_drivers") or "n/a")],
            _text(r, "slack_user_id"),
            _text(r, "csm_email"),
        )
        for r in rows.iter_rows(named=True)
    ]


def new_urgent(actions: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Return the urgent actions opened by this run (a carried one was announced before)."""
    opened = pl.col("opened_on") == as_of if "opened_on" in actions.columns else pl.lit(True)
    return actions.filter((pl.col("priority") == "urgent") & opened)


def action_cards(scored: pl.DataFrame, actions: pl.DataFrame, as_of: date) -> list[Card]:
    """One message per new urgent action, to the account's CSM."""
    cols = [c for c in ("account_id", "name", "score", "segment", "arr") if c in scored.columns]
    people = [c for c in ("slack_user_id", "csm_email") if c in scored.columns]
    rows = new_urgent(actions, as_of).join(
        scored.select(*cols, *people), on="account_id", how="left"
    )
    return [
        Card(
            f"action-{r['account_id']}",
            f"Urgent: {r['action']} — {r.get('name') or r['account_id']}",
            [f"{r.get('reason') or ''}", f"Due {r.get('due_date')}; owner {r.get('owner')}."],
            [("Score", _num(r.get("score"))), ("ARR", _num(r.get("arr"), ",.0f"))],
            _text(r, "slack_user_id"),
            _text(r, "csm_email"),
        )
        for r in rows.sort("account_id").iter_rows(named=True)
    ]


def failure_card(as_of: str, run_id: str, run_name: str, cause: str) -> Card:
    """Build the alert of a failed run: its one-sentence cause and the flow run's id."""
    return Card(
        "failure",
        f"Customer health run FAILED for {as_of}",
        [f"Cause: {cause}", "No scores, report or messages were published for that date."],
        [("Flow run", f"{run_name} ({run_id})")],
    )


def run_cards(scored: pl.DataFrame, actions: pl.DataFrame, cfg: Config, as_of: date) -> list[Card]:
    """Return every message of a run: the summary, then drop alerts, then new urgent actions."""
    return [
        summary_card(scored, actions, cfg, as_of),
        *drop_cards(scored, cfg),
        *action_cards(scored, actions, as_of),
    ]
