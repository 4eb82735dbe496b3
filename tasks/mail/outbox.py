"""The outbox: every message is written to ``<out>/<D>/outbox/*.eml`` before anything is sent.

A message is marked sent (in ``outbox/sent.json``) only after the server accepted it, so a
resend never sends twice and a failed delivery never loses the report.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tasks.errors import ChsError
from tasks.mail.message import MAIL_POLICY

SENT_LOG = "sent.json"
LOCK_FILE = ".send.lock"


class DeliveryError(ChsError):
    """The outbox cannot be delivered as asked (exit status 1)."""


def write_outbox(messages: list[tuple[str, EmailMessage]], outbox: Path) -> list[Path]:
    """Write each message as an .eml file; return their paths."""
    outbox.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (label, msg) in enumerate(messages, start=1):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:80]
        p = outbox / f"{i:03d}-{slug}.eml"
        p.write_bytes(msg.as_bytes(policy=MAIL_POLICY))
        paths.append(p)
    return paths


def sent_log(outbox: Path) -> dict[str, Any]:
    """Return the outbox's record of delivered messages (empty when nothing was sent)."""
    p = outbox / SENT_LOG
    if not p.exists():
        return {}
    try:
        log = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log = None
    if not isinstance(log, dict):
        # Guessing here could send every message a second time: stop and let a person look.
        raise DeliveryError(f"{p} is damaged; fix or remove it before sending again.")
    return log


def write_sent_log(outbox: Path, log: dict[str, Any]) -> None:
    """Replace the outbox's record of delivered messages atomically and durably."""
    tmp = outbox / f".{SENT_LOG}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(log, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(outbox / SENT_LOG)


def carry_sent(old: Path, new: Path) -> int:
    """Mark as sent in ``new`` each message that ``old`` (the date's previous outbox) delivered
    under the same name (one per recipient); return how many.
    """
    if not (old / SENT_LOG).exists() or not new.is_dir():
        return 0
    before = sent_log(old)
    names = {p.name for p in new.glob("*.eml")}
    carried = {
        name: {**entry, "carried_from_previous_run": True}
        for name, entry in before.items()
        if name in names
    }
    if carried:
        write_sent_log(new, {**sent_log(new), **carried})
    return len(carried)


def pending(outbox: Path) -> list[Path]:
    """Return the .eml files of an outbox that no server has accepted yet."""
    sent = sent_log(outbox)
    return [p for p in sorted(outbox.glob("*.eml")) if p.name not in sent]


@contextmanager
def locked(outbox: Path) -> Iterator[None]:
    """Hold the outbox's lock, so that two senders never deliver the same messages."""
    with (outbox / LOCK_FILE).open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeliveryError(
                f"Another process is sending {outbox}; try again once it has finished."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
