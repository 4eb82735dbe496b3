"""Build the e-mails into the outbox and deliver them over SMTP (report -> outbox -> inbox).

Every message is written to ``<out>/<D>/outbox/*.eml`` first; a message is marked sent (in
``outbox/sent.json``) only after the server accepted it, so a resend never sends twice and a
failed delivery never loses the report.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import css_inline
import polars as pl

from tasks.errors import ConfigError
from tasks.render import environment

SENT_LOG = "sent.json"
_LINEBREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")
_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")


@dataclass(frozen=True)
class SmtpSettings:
    """SMTP settings, read once from the CHS_SMTP_* environment variables."""

    host: str
    port: int
    user: str | None
    password: str | None
    security: str
    sender: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpSettings | None:
        """Return the settings, or None when CHS_SMTP_HOST is not set (outbox only)."""
        e = dict(os.environ if env is None else env)
        host = e.get("CHS_SMTP_HOST")
        if not host:
            return None
        security = e.get("CHS_SMTP_SECURITY", "starttls").lower()
        if security not in ("starttls", "ssl", "none"):
            raise ConfigError(f"CHS_SMTP_SECURITY is {security!r}; use starttls, ssl or none.")
        default_port = {"starttls": 587, "ssl": 465, "none": 25}[security]
        try:
            port = int(e.get("CHS_SMTP_PORT", default_port))
        except ValueError:
            raise ConfigError(
                f"CHS_SMTP_PORT is {e.get('CHS_SMTP_PORT')!r}, not a port number."
            ) from None
        return cls(
            host,
            port,
            e.get("CHS_SMTP_USER") or None,
            e.get("CHS_SMTP_PASSWORD") or None,
            security,
            e.get("CHS_MAIL_FROM") or "customer-health@localhost",
        )


def header_safe(text: str, limit: int = 200) -> str:
    """Fold any line break out of text bound for a header (no header injection)."""
    return _LINEBREAKS.sub(" ", text).strip()[:limit]


def valid_address(address: str) -> bool:
    """Return whether ``address`` is one plain e-mail address (no display name, no list)."""
    return bool(_EMAIL.match(address)) and not _LINEBREAKS.search(address)


def _inline(html: str) -> str:
    # E-mail clients drop <style>: move every rule onto the elements it styles.
    return css_inline.inline(html)


def build_message(
    sender: str, to: list[str], subject: str, context: dict[str, Any], attachments: dict[str, bytes]
) -> EmailMessage:
    """Build one multipart message: text, HTML with inlined CSS, and CSV attachments."""
    env = environment()
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = header_safe(sender)
    msg["To"] = ", ".join(a for a in to if valid_address(a))
    msg["Subject"] = header_safe(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="chs.local")
    ctx = {**context, "subject": header_safe(subject)}
    msg.set_content(env.get_template("email.txt.j2").render(**ctx))
    msg.add_alternative(_inline(env.get_template("email.html.j2").render(**ctx)), subtype="html")
    for name, data in attachments.items():
        msg.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return msg


def _csv(df: pl.DataFrame) -> bytes:
    return df.write_csv().encode("utf-8")


def _action_rows(scores: pl.DataFrame, actions: pl.DataFrame) -> pl.DataFrame:
    cols = [
        c
        for c in (
            "account_id",
            "name",
            "arr",
            "score",
            "score_delta_1w",
            "top_drivers",
            "csm_email",
        )
        if c in scores.columns
    ]
    return actions.join(scores.select(cols), on="account_id", how="left").sort(
        "priority", "due_date"
    )


def build_emails(
    scores: pl.DataFrame,
    actions: pl.DataFrame,
    context: dict[str, Any],
    recipients: list[str],
    csm_digests: bool,
    sender: str,
) -> list[tuple[str, EmailMessage]]:
    """Build the stakeholder e-mail and one digest per CSM with accounts that need action."""
    as_of = context["as_of"]
    out: list[tuple[str, EmailMessage]] = []
    rows = _action_rows(scores, actions)
    seg = {s["key"]: s["count"] for s in context["segments"]}
    segment_csvs = {
        f"{s}-{as_of}.csv": _csv(
            scores.filter(pl.col("segment") == s).select(
                [
                    c
                    for c in (
                        "account_id",
                        "name",
                        "csm_email",
                        "arr",
                        "score",
                        "segment",
                        "score_delta_1w",
                        "top_drivers",
                    )
                    if c in scores.columns
                ]
            )
        )
        for s in ("at_risk", "neutral", "healthy")
    }
    good = [r for r in recipients if valid_address(r)]
    if good:
        urgent = rows.filter(pl.col("priority").is_in(["urgent", "high"])).head(
            context.get("top_n", 25)
        )
        subject = (
            f"Customer health {as_of}: {seg.get('at_risk', 0)} at risk, "
            f"{seg.get('healthy', 0)} healthy, {len(actions)} actions"
        )
        ctx = {
            **context,
            "heading": f"Customer health — week ending {as_of}",
            "intro": "The full report is report.html in this run's output folder; segment lists are attached.",
            "list_title": "Most urgent actions",
            "rows": urgent.to_dicts(),
            "footer": "Sent by the Customer Health Score pipeline.",
        }
        out.append(("stakeholders", build_message(sender, good, subject, ctx, segment_csvs)))
    if csm_digests:
        for csm, part in rows.filter(pl.col("csm_email").is_not_null()).group_by(
            "csm_email", maintain_order=True
        ):
            address = str(csm[0])
            if not valid_address(address):
                continue
            subject = f"Your accounts needing action, week ending {as_of}: {part['account_id'].n_unique()} accounts"
            ctx = {
                "heading": "Your accounts that need action",
                "as_of": as_of,
                "intro": f"Week ending {as_of}. Only your own accounts are listed.",
                "headline": None,
                "segments": None,
                "list_title": "Actions",
                "rows": part.to_dicts(),
                "footer": "You receive this because you are the CSM of these accounts.",
            }
            out.append(
                (
                    f"digest-{address}",
                    build_message(
                        sender,
                        [address],
                        subject,
                        ctx,
                        {f"actions-{as_of}.csv": _csv(part.drop("csm_email"))},
                    ),
                )
            )
    return out


def write_outbox(messages: list[tuple[str, EmailMessage]], outbox: Path) -> list[Path]:
    """Write each message as an .eml file; return their paths."""
    outbox.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (label, msg) in enumerate(messages, start=1):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:80]
        p = outbox / f"{i:03d}-{slug}.eml"
        p.write_bytes(msg.as_bytes())
        paths.append(p)
    return paths


def _sent_log(outbox: Path) -> dict[str, str]:
    p = outbox / SENT_LOG
    return json.loads(p.read_text()) if p.exists() else {}


def pending(outbox: Path) -> list[Path]:
    """Return the .eml files of an outbox that no server has accepted yet."""
    sent = _sent_log(outbox)
    return [p for p in sorted(outbox.glob("*.eml")) if p.name not in sent]


def _connect(s: SmtpSettings) -> smtplib.SMTP:
    if s.security == "ssl":
        con: smtplib.SMTP = smtplib.SMTP_SSL(
            s.host, s.port, timeout=30, context=ssl.create_default_context()
        )
    else:
        con = smtplib.SMTP(s.host, s.port, timeout=30)
        if s.security == "starttls":
            con.starttls(context=ssl.create_default_context())
    if s.user:
        con.login(s.user, s.password or "")
    return con


def send_outbox(
    outbox: Path, s: SmtpSettings, retries: int = 3, backoff_s: float = 2.0
) -> tuple[int, int]:
    """Send every pending message; return (sent, still pending). Retries with backoff."""
    sent_log = _sent_log(outbox)
    todo = pending(outbox)
    sent = 0
    for path in todo:
        msg = BytesParser(policy=policy.SMTP).parsebytes(path.read_bytes())
        for attempt in range(retries):
            try:
                with _connect(s) as con:
                    con.send_message(msg, from_addr=s.sender)
                break
            except (smtplib.SMTPException, OSError):
                if attempt == retries - 1:
                    return sent, len(todo) - sent
                time.sleep(backoff_s * 2**attempt)
        sent_log[path.name] = datetime.now(UTC).isoformat(timespec="seconds")
        (outbox / SENT_LOG).write_text(json.dumps(sent_log, indent=1))
        sent += 1
    return sent, len(todo) - sent
