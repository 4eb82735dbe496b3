"""``chs send``'s chat part: post what waits in each run's ``outbox/chat`` (and in the
failure alerts' ``alerts/chat``) to the Slack and Teams webhooks, each message once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from tasks.config import Config
from tasks.notify.webhook import chat_pending, send_chat, webhook_urls


def chat_outboxes(cfg: Config, as_of: date | None) -> list[Path]:
    """Return the chat outboxes to deliver: one date's, or every date's and the alerts'."""
    if as_of is not None:
        return [cfg.out_dir / as_of.isoformat() / "outbox" / "chat"]
    days = sorted(p for p in cfg.out_dir.glob("????-??-??/outbox/chat") if p.is_dir())
    return [*days, cfg.out_dir / "alerts" / "chat"]


def send_chat_outboxes(cfg: Config, as_of: date | None, say: Callable[[str], Any]) -> int:
    """Deliver every waiting chat message; return how many are still waiting."""
    if not cfg.notify.targets():
        return 0
    urls, missing = webhook_urls(cfg)
    for note in missing:
        say(f"chat: {note}")
    sent = left = 0
    for box in chat_outboxes(cfg, as_of):
        waiting = len(chat_pending(box))
        if not waiting:
            continue
        say(f"{box.parent}: posting {waiting} chat messages")
        report = send_chat(box, urls)
        for error in report.errors:
            say(f"  not delivered: {error}")
        sent, left = sent + report.sent, left + report.pending
    say(f"sent {sent} chat messages; {left} still waiting")
    return left
