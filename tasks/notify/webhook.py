"""The chat outbox and its delivery to incoming webhooks over HTTPS (httpx).

Like the e-mail outbox: every message is written to ``outbox/chat/NNN-<tool>-<label>.json``
before anything is sent, and recorded in ``outbox/chat/sent.json`` only after the webhook
answered 2xx, so ``chs send`` delivers what is left and never sends a message twice. 429 and
5xx answers (and refused connections, timeouts) are retried, waiting what ``Retry-After``
asks (bounded). The webhook URL is a secret: it never appears in a file, a log or an error.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tasks.config import Config
from tasks.http_retry import Retry, request
from tasks.mail.outbox import locked, sent_log, write_sent_log
from tasks.mail.smtp import DeliveryReport
from tasks.notify.messages import Card, render
from tasks.sources.secrets import named_secret

DEFAULT_ENV = {"slack": "CHS_SLACK_WEBHOOK_URL", "teams": "CHS_TEAMS_WEBHOOK_URL"}
_MESSAGE = "[0-9][0-9][0-9]-*.json"


def write_chat_outbox(cards: list[Card], tools: list[str], outbox: Path) -> list[Path]:
    """Write each card once per chat tool as a JSON file; return their paths."""
    outbox.mkdir(parents=True, exist_ok=True)
    paths, i = [], len(list(outbox.glob(_MESSAGE)))
    for card in cards:
        for tool in tools:
            i += 1
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", card.label)[:80]
            p = outbox / f"{i:03d}-{tool}-{slug}.json"
            doc = {"tool": tool, "label": card.label, "payload": render(card, tool)}
            p.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
            paths.append(p)
    return paths


def chat_pending(outbox: Path) -> list[Path]:
    """Return the chat messages of an outbox that no webhook has accepted yet."""
    if not outbox.is_dir():
        return []
    sent = sent_log(outbox)
    return [p for p in sorted(outbox.glob(_MESSAGE)) if p.name not in sent]


def webhook_urls(cfg: Config) -> tuple[dict[str, str], list[str]]:
    """Return the webhook URL of each configured tool, and a note for each one without."""
    urls, missing = {}, []
    for tool, hook in cfg.notify.targets().items():
        env = hook.webhook_env or (None if hook.webhook_secret else DEFAULT_ENV[tool])
        url = named_secret(f"[notify.{tool}]", env, hook.webhook_secret)
        if url:
            urls[tool] = url.strip()
        else:
            missing.append(f"{env} is not set, so {tool} messages wait in the outbox")
    return urls, missing


def _post(
    client: httpx.Client, url: str, payload: dict[str, Any], retry: Retry
) -> tuple[int | None, str | None, bool]:
    """POST one message; return (status, error, whether the webhook looks down for good)."""
    parts = urlsplit(url)  # a server may echo the path, which holds the webhook's secret
    r, error = request(client, "POST", url, payload, retry, (parts.path, parts.query))
    status = r.status_code if r is not None else None
    if error is None:
        return status, None, False
    if status is not None and status != 429 and status < 500:
        # 400 invalid_payload fails this message only; 403, 404 no_service, 410 archived: all
        return status, error, status in (401, 403, 404, 410)
    return status, error, True


def send_chat(
    outbox: Path,
    urls: dict[str, str],
    retry: Retry | None = None,
    timeout_s: float = 10.0,
) -> DeliveryReport:
    """Deliver every pending chat message once; a webhook that stays down keeps its messages."""
    report = DeliveryReport()
    if not outbox.is_dir():
        return report
    retry = retry or Retry()
    with locked(outbox), httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        log = sent_log(outbox)
        todo = [p for p in sorted(outbox.glob(_MESSAGE)) if p.name not in log]
        report.pending = len(todo)
        down: set[str] = set()
        for path in todo:
            doc = json.loads(path.read_text(encoding="utf-8"))
            tool = str(doc.get("tool"))
            if tool not in urls or tool in down:
                continue
            status, error, stop = _post(client, urls[tool], doc["payload"], retry)
            if error is None:
                log[path.name] = {
                    "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "tool": tool,
                    "status": status,
                }
                write_sent_log(outbox, log)
                report.sent, report.pending = report.sent + 1, report.pending - 1
            else:
                report.errors.append(f"{path.name}: {error}")
                if stop:
                    down.add(tool)
    return report
