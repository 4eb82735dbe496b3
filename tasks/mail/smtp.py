"""Deliver the outbox over SMTP (STARTTLS, SSL or plain on loopback), retrying what can be retried.

The bytes on disk are the bytes sent. One SMTP session can still fail between the server's
acceptance and our record of it; the Message-ID then lets mail clients fold the duplicate.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.utils import formataddr, getaddresses, parseaddr
from pathlib import Path
from typing import Any

from tasks.errors import ConfigError
from tasks.faults import fault_point
from tasks.mail.message import DEFAULT_SENDER, LINEBREAKS, MAIL_POLICY, header_safe, valid_address
from tasks.mail.outbox import locked, sent_log, write_sent_log

_BARE_LF = re.compile(rb"\r?\n")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class SmtpSettings:
    """SMTP settings, read once from the CHS_SMTP_* environment variables."""

    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    security: str
    sender: str
    cafile: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpSettings | None:
        """Return the settings, or None when CHS_SMTP_HOST is not set (outbox only)."""
        e = dict(os.environ if env is None else env)
        host = e.get("CHS_SMTP_HOST", "").strip()
        if not host:
            return None
        security = e.get("CHS_SMTP_SECURITY", "starttls").strip().lower()
        if security not in ("starttls", "ssl", "none"):
            raise ConfigError(f"CHS_SMTP_SECURITY is {security!r}; use starttls, ssl or none.")
        default_port = {"starttls": 587, "ssl": 465, "none": 25}[security]
        try:
            port = int(e.get("CHS_SMTP_PORT") or default_port)
        except ValueError:
            raise ConfigError(
                f"CHS_SMTP_PORT is {e.get('CHS_SMTP_PORT')!r}, not a port number."
            ) from None
        user = e.get("CHS_SMTP_USER") or None
        if user and security == "none" and host not in _LOOPBACK:
            raise ConfigError(
                "CHS_SMTP_USER is set but CHS_SMTP_SECURITY is none: the password would cross "
                "the network unencrypted; use starttls or ssl."
            )
        try:
            timeout = float(e.get("CHS_SMTP_TIMEOUT") or 30)
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise ConfigError(
                f"CHS_SMTP_TIMEOUT is {e.get('CHS_SMTP_TIMEOUT')!r}, not a number of seconds."
            )
        cafile = e.get("CHS_SMTP_CA_FILE") or None
        if cafile and not Path(cafile).is_file():
            raise ConfigError(f"CHS_SMTP_CA_FILE {cafile} does not exist.")
        return cls(
            host,
            port,
            user,
            e.get("CHS_SMTP_PASSWORD") or None,
            security,
            cls.sender_from_env(e),
            cafile,
            timeout,
        )

    @staticmethod
    def sender_from_env(env: dict[str, str] | None = None) -> str:
        """Return the From address of CHS_MAIL_FROM (``addr`` or ``Name <addr>``), checked."""
        raw = (os.environ if env is None else env).get("CHS_MAIL_FROM") or DEFAULT_SENDER
        if LINEBREAKS.search(raw):
            raise ConfigError("CHS_MAIL_FROM contains a line break.")
        name, addr = parseaddr(raw)
        if not (valid_address(addr) or addr == DEFAULT_SENDER):
            raise ConfigError(f"CHS_MAIL_FROM is {raw!r}, not an e-mail address.")
        return formataddr((header_safe(name), addr)) if name else addr


def _tls_context(s: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=s.cafile)


def _connect(s: SmtpSettings) -> smtplib.SMTP:
    con: smtplib.SMTP
    if s.security == "ssl":
        con = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=_tls_context(s))
    else:
        con = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
    try:
        if s.security == "starttls":
            con.starttls(context=_tls_context(s))
        if s.user:
            con.login(s.user, s.password or "")
    except BaseException:
        _close(con)
        raise
    return con


def _close(con: smtplib.SMTP | None) -> None:
    if con is None:
        return
    try:
        con.quit()
    except (smtplib.SMTPException, OSError):
        con.close()


def _transient(err: BaseException) -> bool:
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return any(400 <= code < 500 for code, _ in err.recipients.values())
    if isinstance(err, smtplib.SMTPResponseException):
        return 400 <= err.smtp_code < 500
    if isinstance(err, ssl.SSLCertVerificationError | smtplib.SMTPNotSupportedError):
        return False
    return isinstance(err, smtplib.SMTPServerDisconnected | OSError)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def _describe(err: BaseException, s: SmtpSettings) -> str:
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        text = "; ".join(
            f"{rcpt} refused ({code} {_text(msg)})" for rcpt, (code, msg) in err.recipients.items()
        )
    elif isinstance(err, smtplib.SMTPResponseException):
        text = f"the server answered {err.smtp_code} {_text(err.smtp_error)}"
    else:
        text = f"{type(err).__name__}: {err}"
    text = header_safe(text, 300)
    return text.replace(s.password, "***") if s.password else text


def _envelope(raw: bytes) -> tuple[str, list[str], str]:
    msg = BytesParser(policy=MAIL_POLICY).parsebytes(raw, headersonly=True)
    sender = parseaddr(str(msg.get("From", "")))[1]
    to = [a for _, a in getaddresses([str(v) for v in msg.get_all("To", [])])]
    if not (valid_address(sender) or sender == DEFAULT_SENDER) or not to:
        raise ValueError("its From or To header is missing or unusable")
    if bad := [a for a in to if not valid_address(a)]:
        raise ValueError(f"its recipient {bad[0]!r} is not a plain e-mail address")
    return sender, to, str(msg.get("Message-ID", ""))


@dataclass
class DeliveryReport:
    """What one pass over an outbox did."""

    sent: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[int]:
        """Unpack as ``sent, pending`` (what ``send_outbox`` used to return)."""
        return iter((self.sent, self.pending))


class _Session:
    """One SMTP connection, opened on first use and reopened after a failure."""

    def __init__(self, s: SmtpSettings) -> None:
        self.settings = s
        self.con: smtplib.SMTP | None = None

    def get(self) -> smtplib.SMTP:
        if self.con is None:
            self.con = _connect(self.settings)
        return self.con

    def drop(self) -> None:
        con, self.con = self.con, None
        if con is not None:
            con.close()

    def close(self) -> None:
        con, self.con = self.con, None
        _close(con)


def _send_one(
    session: _Session, raw: bytes, retries: int, backoff_s: float, sleep: Callable[[float], Any]
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """Try one message; return (sent-log entry or None, error, whether to stop the batch)."""
    try:
        sender, to, message_id = _envelope(raw)
    except ValueError as err:
        return None, f"not sent: {err}", False
    raw = _BARE_LF.sub(b"\r\n", raw)  # SMTP wants CRLF; some .eml writers use bare LF
    for attempt in range(1, retries + 1):
        connected = session.con is not None
        try:
            con = session.get()
            connected = True
            refused = con.sendmail(sender, to, raw)
        except (smtplib.SMTPException, OSError) as err:
            session.drop()
            why = _describe(err, session.settings)
            if not _transient(err):
                # a refused login, sender or certificate fails every message alike
                fatal = not connected or isinstance(err, smtplib.SMTPSenderRefused)
                return None, why, fatal
            if attempt == retries:
                return None, f"{why} (gave up after {retries} attempts)", True
            sleep(min(backoff_s * 2 ** (attempt - 1), 60.0))
            continue
        entry = {
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "message_id": message_id,
            "to": [a for a in to if a not in refused],
            "refused": sorted(refused),
        }
        return entry, "some recipients refused: " + ", ".join(refused) if refused else None, False
    return None, "not attempted", True


def send_outbox(
    outbox: Path,
    s: SmtpSettings,
    retries: int = 3,
    backoff_s: float = 2.0,
    sleep: Callable[[float], Any] | None = None,
) -> DeliveryReport:
    """Send every pending message once, retrying transient failures with exponential backoff."""
    sleep = sleep or time.sleep
    with locked(outbox):
        log = sent_log(outbox)
        todo = [p for p in sorted(outbox.glob("*.eml")) if p.name not in log]
        report = DeliveryReport(pending=len(todo))
        session = _Session(s)
        try:
            for path in todo:
                entry, error, stop = _send_one(
                    session, path.read_bytes(), retries, backoff_s, sleep
                )
                if entry is not None:
                    log[path.name] = entry
                    write_sent_log(outbox, log)
                    report.sent, report.pending = report.sent + 1, report.pending - 1
                    fault_point("deliver")  # test-only: CHS_FAULT_AT (tasks/faults.py)
                if error:
                    report.errors.append(f"{path.name}: {error}")
                if stop:
                    break
        finally:
            session.close()
    return report
