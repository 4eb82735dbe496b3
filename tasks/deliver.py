"""Build the e-mails into the outbox and deliver them over SMTP (report -> outbox -> inbox).

Every message is written to ``<out>/<D>/outbox/*.eml`` first; a message is marked sent (in
``outbox/sent.json``) only after the server accepted it, so a resend never sends twice and a
failed delivery never loses the report. The bytes on disk are the bytes sent. One SMTP session
can still fail between the server's acceptance and our record of it; the Message-ID then lets
mail clients fold the duplicate.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import css_inline
import polars as pl

from tasks.actions import PRIORITY_ORDER
from tasks.charts import histogram_png, segment_bar_png, trend_png
from tasks.config import Config
from tasks.errors import ChsError, ConfigError
from tasks.render import ALL_SEGMENTS, SEGMENT_COLOURS, SEGMENT_LABELS, environment, histogram

SENT_LOG = "sent.json"
LOCK_FILE = ".send.lock"
DEFAULT_SENDER = "customer-health@localhost"
# 7-bit transfer encodings: every server takes the message, and no line exceeds SMTP's limit.
MAIL_POLICY = policy.SMTP.clone(cte_type="7bit")
_LINEBREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_BARE_LF = re.compile(rb"\r?\n")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_FORMULA_START = r"^[=+\-@\t\r]"  # what a spreadsheet may run as a formula
_INLINER = css_inline.CSSInliner(
    keep_style_tags=False, keep_link_tags=False, keep_at_rules=False, load_remote_stylesheets=False
)


class DeliveryError(ChsError):
    """The outbox cannot be delivered as asked (exit status 1)."""


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
        )

    @staticmethod
    def sender_from_env(env: dict[str, str] | None = None) -> str:
        """Return the From address of CHS_MAIL_FROM (``addr`` or ``Name <addr>``), checked."""
        raw = (os.environ if env is None else env).get("CHS_MAIL_FROM") or DEFAULT_SENDER
        if _LINEBREAKS.search(raw):
            raise ConfigError("CHS_MAIL_FROM contains a line break.")
        name, addr = parseaddr(raw)
        if not (valid_address(addr) or addr == DEFAULT_SENDER):
            raise ConfigError(f"CHS_MAIL_FROM is {raw!r}, not an e-mail address.")
        return formataddr((header_safe(name), addr)) if name else addr


def header_safe(text: str, limit: int = 200) -> str:
    """Fold line breaks and control characters out of header text (no header injection)."""
    return _CONTROL.sub(" ", _LINEBREAKS.sub(" ", text)).strip()[:limit]


def valid_address(address: str) -> bool:
    """Return whether ``address`` is one plain ASCII e-mail address (no name, no list)."""
    return len(address) <= 254 and bool(_EMAIL.match(address))


def _inline(html: str) -> str:
    # E-mail clients drop <style>: move every rule onto the elements it styles.
    return _INLINER.inline(html)


@dataclass(frozen=True)
class Chart:
    """One PNG chart embedded in an e-mail, shown where its Content-ID is referenced."""

    name: str
    caption: str
    png: bytes
    alt: str
    width: int
    height: int


def build_message(
    sender: str,
    to: list[str],
    subject: str,
    context: dict[str, Any],
    attachments: dict[str, bytes],
    charts: list[Chart] | None = None,
) -> EmailMessage:
    """Build one message: text, HTML (inlined CSS, CID images) and CSV attachments."""
    env = environment()
    good = [a for a in to if valid_address(a)]
    if not good:
        raise ValueError("a message needs at least one valid recipient")
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = sender
    msg["To"] = ", ".join(good)
    msg["Subject"] = header_safe(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    msg["X-Auto-Response-Suppress"] = "All"
    # short Content-IDs: a folded Content-ID header confuses some mail clients
    cids = {c.name: f"<{c.name}.{secrets.token_hex(6)}@{domain}>" for c in charts or []}
    images = [
        {
            "cid": cids[c.name][1:-1],
            "caption": c.caption,
            "alt": c.alt,
            "width": c.width,
            "height": c.height,
        }
        for c in charts or []
    ]
    ctx = {**context, "subject": header_safe(subject), "images": images}
    msg.set_content(env.get_template("email.txt.j2").render(**ctx))
    msg.add_alternative(_inline(env.get_template("email.html.j2").render(**ctx)), subtype="html")
    html = msg.get_body(("html",))
    assert isinstance(html, EmailMessage)
    for c in charts or []:
        html.add_related(
            c.png, "image", "png", cid=cids[c.name], filename=f"{c.name}.png", disposition="inline"
        )
    for name, data in attachments.items():
        msg.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return msg


def safe_csv(df: pl.DataFrame) -> bytes:
    """Write CSV whose text cells cannot run as spreadsheet formulas (OWASP CSV injection)."""
    text = [c for c, t in df.schema.items() if t == pl.String]
    guarded = df.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA_START))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )
    return guarded.write_csv().encode("utf-8")


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


def _stakeholder_charts(context: dict[str, Any]) -> list[Chart]:
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
    context: dict[str, Any],
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
    }
    return build_message(sender, to, subject, ctx, attachments, _stakeholder_charts(context))


def _digest_email(
    own: pl.DataFrame,
    part: pl.DataFrame,
    address: str,
    context: dict[str, Any],
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
    context: dict[str, Any],
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


def _sent_log(outbox: Path) -> dict[str, Any]:
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


def _write_sent_log(outbox: Path, log: dict[str, Any]) -> None:
    tmp = outbox / f".{SENT_LOG}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(log, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, outbox / SENT_LOG)


def pending(outbox: Path) -> list[Path]:
    """Return the .eml files of an outbox that no server has accepted yet."""
    sent = _sent_log(outbox)
    return [p for p in sorted(outbox.glob("*.eml")) if p.name not in sent]


@contextmanager
def _locked(outbox: Path) -> Iterator[None]:
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
    with _locked(outbox):
        log = _sent_log(outbox)
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
                    _write_sent_log(outbox, log)
                    report.sent, report.pending = report.sent + 1, report.pending - 1
                if error:
                    report.errors.append(f"{path.name}: {error}")
                if stop:
                    break
        finally:
            session.close()
    return report
