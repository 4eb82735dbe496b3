"""The weekly flow's chat steps: write the Slack/Teams messages into the outbox, deliver them,
and post a failed run's cause (SPEC 10.2).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
from prefect import get_run_logger
from prefect.cache_policies import NONE

from flows.step import step
from tasks.config import Config
from tasks.mail.smtp import DeliveryReport
from tasks.notify.messages import failure_card, run_cards
from tasks.notify.webhook import send_chat, webhook_urls, write_chat_outbox

CHAT = Path("outbox") / "chat"


@step(name="compose-chat", cache_policy=NONE)
def compose_chat(
    cfg: Config, scored: pl.DataFrame, actions: pl.DataFrame, as_of: date, stage: Path
) -> int:
    """Write the summary, drop alerts and new urgent actions for each chat tool to the outbox."""
    tools = list(cfg.notify.targets())
    if not tools:
        return 0
    return len(write_chat_outbox(run_cards(scored, actions, cfg, as_of), tools, stage / CHAT))


def _log_delivery(report: DeliveryReport, outbox: Path, missing: list[str]) -> None:
    log = get_run_logger()
    for note in missing:
        log.warning(note)
    for error in report.errors:
        log.warning("chat message %s", error)
    log.info("%d chat messages sent; %d waiting in %s", report.sent, report.pending, outbox)


@step(name="deliver-chat", retries=0, cache_policy=NONE)
def deliver_chat(cfg: Config, out: Path, send: bool) -> tuple[int, int]:
    """Post the date's chat messages to their webhooks when asked; otherwise leave them."""
    outbox = out / CHAT
    if not cfg.notify.targets() or not outbox.is_dir():
        return 0, 0
    if not send:
        n = len(list(outbox.glob("[0-9]*.json")))
        get_run_logger().info("%d chat messages are only in %s (--no-send)", n, outbox)
        return 0, n
    urls, missing = webhook_urls(cfg)
    report = send_chat(outbox, urls)
    _log_delivery(report, outbox, missing)
    return report.sent, report.pending


def chat_failure_alert(cfg: Config, as_of: str, run_id: str, run_name: str, cause: str) -> None:
    """Write a failed run's cause to ``<out>/alerts/chat`` and post it to each chat tool."""
    tools = list(cfg.notify.targets())
    if not tools:
        return
    outbox = cfg.out_dir / "alerts" / "chat"
    write_chat_outbox([failure_card(as_of, run_id, run_name, cause)], tools, outbox)
    urls, missing = webhook_urls(cfg)
    _log_delivery(send_chat(outbox, urls), outbox, missing)
