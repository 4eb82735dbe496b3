"""E-mail building and delivery against a real SMTP server on loopback (aiosmtpd).

The server runs in a thread on a free port; the tests parse what it received. TLS uses a
self-signed certificate made in the test and trusted through CHS_SMTP_CA_FILE.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flows.cli.main import main
from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tasks.config import Config, parse_config
from tasks.errors import ConfigError
from tasks.mail.compose import build_emails
from tasks.mail.message import build_message, header_safe, valid_address
from tasks.mail.outbox import SENT_LOG, DeliveryError, pending, write_outbox
from tasks.mail.smtp import SmtpSettings, send_outbox
from tasks.report.context import ReportInputs, build_context
from tasks.report.templates import render_report
from tests.conftest import DEMO_END
from tests.tasks.mail.png import decode_png

AS_OF = date(2026, 11, 16)
PASSWORD = "s3cret-Pa55-7f1c"  # unique, so a leak anywhere is easy to find
HOSTILE = "<script>alert(1)</script>"


# --- a real SMTP server on loopback ---------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)


@dataclass
class Handler:
    """Record every accepted message; refuse DATA ``refuse_first`` times, RCPT for ``reject``."""

    refuse_first: int = 0
    reject: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_first > 0:
            self.refuse_first -= 1
            return "451 4.3.0 try again later"
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                # STARTTLS sets session.ssl; implicit TLS shows on the transport
                session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                bool(session.authenticated),
            )
        )
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"chs", PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """Start servers on demand: ``start(handler, port=None, **smtp_kwargs)``; stop them after."""
    running: list[Controller] = []

    def start(handler: Handler, port: int | None = None, **kwargs: Any) -> int:
        port = port or free_port()
        c = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        c.start()
        running.append(c)
        return port

    yield start
    for c in running:
        c.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Make a self-signed certificate for 127.0.0.1 and localhost; return (cert, key) paths."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chs test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certificate)
    return ctx


def settings(port: int, **env: str) -> SmtpSettings:
    s = SmtpSettings.from_env(
        {
            "CHS_SMTP_HOST": "127.0.0.1",
            "CHS_SMTP_PORT": str(port),
            "CHS_SMTP_SECURITY": "none",
            "CHS_MAIL_FROM": "Customer Health <health@example.com>",
            **env,
        }
    )
    assert s is not None
    return s


# --- a tiny portfolio with hostile text -----------------------------------------------------


def tiny_config(tmp_path: Path, **report: Any) -> Config:
    return parse_config(
        {
            "sources": {"accounts": {"uri": "accounts.csv"}},
            "output": {"dir": "out"},
            "report": {"recipients": ["cs-lead@example.com", "vp@example.com"], **report},
        },
        tmp_path,
    )


def tiny_scores() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4", "A5"],
            "name": [HOSTILE, "Beta\r\nBcc: evil@z.com", "Gamma GmbH", "=HYPERLINK(1)", "Epsilon"],
            "csm_email": [
                "ann@example.com",
                "Ann@Example.com ",  # same CSM, other spelling: one digest
                "bob@example.com",
                "x@y.com\r\nBcc: evil@z.com",
                None,
            ],
            "tier": ["enterprise", "smb", "smb", "smb", "smb"],
            "arr": [120_000.0, 30_000.0, 80_000.0, 5_000.0, 9_000.0],
            "score": [31.0, 55.0, 82.0, 38.0, None],
            "segment": ["at_risk", "neutral", "healthy", "at_risk", None],
            "coverage": [0.9, 0.8, 1.0, 0.7, 0.2],
            "score_delta_1w": [-12.0, 1.5, 0.5, -2.0, None],
            "drop_alert": [True, False, False, False, False],
            "top_drivers": [
                "nps_account (-20.0)",
                "csat_pct (-8.0)",
                None,
                "stickiness (-9.0)",
                None,
            ],
            "change_drivers": ["nps_account (-11.0)", None, None, None, None],
            "renewal_date": [date(2027, 1, 10), None, None, None, None],
            "days_to_renewal": [55, None, None, None, None],
            "license_utilisation": [0.3, 0.6, 0.95, 0.5, None],
            "nps_account": [-50.0, 0.0, 80.0, None, None],
        }
    )


def tiny_actions() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["A1", "A2", "A4", "A3"],
            "as_of": [AS_OF] * 4,
            "action": [
                "Executive business review",
                "Health-check call",
                "Call </td> back",
                "Ask for a reference",
            ],
            "reason": ["At risk", "Neutral and falling", HOSTILE, "Promoter"],
            "owner": ["csm"] * 4,
            "priority": ["urgent", "medium", "high", "low"],
            "due_date": [date(2026, 11, 23)] * 4,
        }
    )


def tiny_kpis() -> dict[str, Any]:
    return {
        "as_of": AS_OF.isoformat(),
        "accounts_active": 5,
        "mean_score": 51.5,
        "nps": 10.0,
        "nps_n": 12,
        "accounts_by_segment": {"healthy": 1, "neutral": 1, "at_risk": 2, "insufficient_data": 1},
        "arr_by_segment": {
            "healthy": 80_000.0,
            "neutral": 30_000.0,
            "at_risk": 125_000.0,
            "insufficient_data": 9_000.0,
        },
    }


def tiny_surveys() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["A1"],
            "survey": ["nps"],
            "score": [2.0],
            "submitted_at": [dt.datetime(2026, 11, 10, 9)],
            "comment": ['<img src=x onerror="alert(2)"> support never answers'],
        }
    )


def tiny_context(cfg: Config) -> dict[str, Any]:
    week = [{**tiny_kpis(), "as_of": "2026-11-09", "mean_score": 54.0}]
    return build_context(
        ReportInputs(
            cfg=cfg,
            as_of=AS_OF,
            scores=tiny_scores(),
            actions=tiny_actions(),
            kpis=tiny_kpis(),
            validation={
                "datasets": {
                    "accounts": {
                        "rows_read": 6,
                        "rows_accepted": 5,
                        "rows_quarantined": 1,
                        "failed_expectations": [
                            {"expectation": "x", "column": "name", "count": 1, "reason": HOSTILE}
                        ],
                    }
                }
            },
            prev_kpis=week[0],
            history=week,
            surveys=tiny_surveys(),
        )
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """Build the tiny run's e-mails into an outbox."""
    cfg = tiny_config(tmp_path)
    emails = build_emails(
        tiny_scores(),
        tiny_actions(),
        tiny_context(cfg),
        cfg,
        "Customer Health <health@example.com>",
    )
    folder = tmp_path / "out" / AS_OF.isoformat() / "outbox"
    write_outbox(emails.messages, folder)
    return folder


def _by_id(received: list[Received]) -> dict[str, Received]:
    return {str(r.message["Message-ID"]): r for r in received}


# --- content ----------------------------------------------------------------------------------


def test_report_and_emails_escape_hostile_text(tmp_path: Path, outbox: Path) -> None:
    html = render_report(tiny_context(tiny_config(tmp_path)))
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html  # the survey comment is quoted as text
    assert "&lt;img src=x onerror=" in html
    for path in outbox.glob("*.eml"):
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        body = msg.get_body(("html",)).get_content()
        assert "<script" not in body.lower()
        assert "Call </td> back" not in body


def test_messages_reach_the_server_with_text_html_images_and_csv(
    smtp_server: Any, outbox: Path
) -> None:
    handler = Handler()
    report = send_outbox(outbox, settings(smtp_server(handler)), backoff_s=0)
    assert (report.sent, report.pending, report.errors) == (3, 0, [])
    by_to = {tuple(r.rcpt_tos): r for r in handler.received}
    assert set(by_to) == {
        ("cs-lead@example.com", "vp@example.com"),
        ("ann@example.com",),
        ("bob@example.com",),
    }
    assert all(r.mail_from == "health@example.com" for r in handler.received)
    for r in handler.received:
        msg = r.message
        assert msg["From"] == "Customer Health <health@example.com>"
        assert msg["Auto-Submitted"] == "auto-generated"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "<style" not in html
        assert "<link" not in html
        assert "http" not in html.lower()
        assert 'style="' in html  # the CSS was inlined
        assert "Customer health" in text or "Your accounts" in text
        images = {
            p["Content-ID"].strip("<>"): p
            for p in msg.walk()
            if p.get_content_type() == "image/png"
        }
        referenced = {src.split('"')[0] for src in html.split('src="cid:')[1:]}
        assert images
        assert referenced == set(images)
        for part in images.values():
            width, height, pixels = decode_png(part.get_content())
            assert width >= 400
            assert height >= 40
            colours = {pixels[i : i + 3] for i in range(0, len(pixels), 3 * 7)}
            assert len(colours) > 3  # drawn, not blank
    stake = by_to[("cs-lead@example.com", "vp@example.com")].message
    csvs = {a.get_filename(): a.get_payload(decode=True) for a in stake.iter_attachments()}
    assert set(csvs) == {
        f"{s}-{AS_OF}.csv" for s in ("healthy", "neutral", "at_risk", "insufficient_data")
    }
    at_risk = pl.read_csv(io.BytesIO(csvs[f"at_risk-{AS_OF}.csv"]))
    assert at_risk["account_id"].to_list() == ["A1", "A4"]
    assert at_risk["name"].to_list()[1] == "'=HYPERLINK(1)"  # a formula is neutralised
    assert "2 at risk" in stake["Subject"]
    assert str(AS_OF) in stake["Subject"]


def test_each_csm_digest_holds_only_their_own_accounts(smtp_server: Any, outbox: Path) -> None:
    handler = Handler()
    send_outbox(outbox, settings(smtp_server(handler)), backoff_s=0)
    digests = {r.rcpt_tos[0]: r.message for r in handler.received if len(r.rcpt_tos) == 1}
    ann = digests["ann@example.com"]
    actions = pl.read_csv(io.BytesIO(next(ann.iter_attachments()).get_payload(decode=True)))
    assert sorted(actions["account_id"]) == ["A1", "A2"]  # both spellings of Ann's address
    assert "Gamma" not in ann.get_body(("html",)).get_content()
    bob = pl.read_csv(
        io.BytesIO(next(digests["bob@example.com"].iter_attachments()).get_payload(decode=True))
    )
    assert bob["account_id"].to_list() == ["A3"]
    assert set(digests) == {"ann@example.com", "bob@example.com"}  # A4's address is unusable


def test_header_injection_cannot_add_headers_or_recipients(
    smtp_server: Any, tmp_path: Path
) -> None:
    cfg = tiny_config(
        tmp_path,
        title="Health\r\nBcc: evil@z.com",
        recipients=["cs-lead@example.com", "a@b.com\r\nBcc: evil@z.com", "x@y.com, evil@z.com"],
    )
    emails = build_emails(
        tiny_scores(), tiny_actions(), tiny_context(cfg), cfg, "health@example.com"
    )
    # two configured recipients and account A4's CSM address are left out, not "repaired"
    assert len([a for a in emails.skipped if "evil@z.com" in a]) == 3
    folder = tmp_path / "outbox"
    write_outbox(emails.messages, folder)
    handler = Handler()
    send_outbox(folder, settings(smtp_server(handler)), backoff_s=0)
    assert handler.received
    for r in handler.received:
        assert not any("evil" in a for a in r.rcpt_tos)
        msg = r.message
        assert msg["Bcc"] is None
        assert "\n" not in str(msg["Subject"])
        assert "\r" not in str(msg["Subject"])
        lines = r.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert not [h for h in lines if h.lower().startswith(b"bcc")]
    direct = build_message(
        "health@example.com",
        ["ok@example.com"],
        "Hi\r\nBcc: evil@z.com\nX-Evil: 1",
        {
            "heading": "h",
            "intro": "i",
            "summary": [],
            "headline": None,
            "segments": None,
            "list_title": "l",
            "rows": [],
            "footer": "f",
        },
        {},
    )
    assert direct["Bcc"] is None
    assert direct["X-Evil"] is None
    assert header_safe("a\r\nb\u2028c\x00d") == "a b c d"
    assert not valid_address("x@y.com\r\nBcc: evil@z.com")
    assert not valid_address("Eve <eve@z.com>")


# --- transport security and authentication ---------------------------------------------------


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_starttls_with_auth_delivers_and_never_leaks_the_password(
    smtp_server: Any,
    outbox: Path,
    certificate: tuple[Path, Path],
    mechanism: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = Handler()
    port = smtp_server(
        handler,
        tls_context=_server_tls(certificate),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_exclude_mechanism=[m for m in ("LOGIN", "PLAIN") if m != mechanism],
    )
    s = settings(
        port,
        CHS_SMTP_SECURITY="starttls",
        CHS_SMTP_USER="chs",
        CHS_SMTP_PASSWORD=PASSWORD,
        CHS_SMTP_CA_FILE=str(certificate[0]),
    )
    assert PASSWORD not in repr(s)
    with caplog.at_level(logging.DEBUG):
        report = send_outbox(outbox, s, backoff_s=0)
    assert report.sent == 3
    assert report.pending == 0
    assert all(r.tls and r.authenticated for r in handler.received)
    leaks = [
        p for p in outbox.parent.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()
    ]
    assert leaks == []
    assert PASSWORD not in caplog.text
    assert all(PASSWORD.encode() not in r.data for r in handler.received)


def test_implicit_tls(smtp_server: Any, outbox: Path, certificate: tuple[Path, Path]) -> None:
    handler = Handler()
    port = smtp_server(handler, ssl_context=_server_tls(certificate))
    s = settings(port, CHS_SMTP_SECURITY="ssl", CHS_SMTP_CA_FILE=str(certificate[0]))
    assert send_outbox(outbox, s, backoff_s=0).sent == 3
    assert all(r.tls for r in handler.received)


def test_untrusted_certificate_or_wrong_password_sends_nothing(
    smtp_server: Any, outbox: Path, certificate: tuple[Path, Path]
) -> None:
    handler = Handler()
    port = smtp_server(handler, tls_context=_server_tls(certificate), authenticator=_authenticator)
    untrusted = send_outbox(outbox, settings(port, CHS_SMTP_SECURITY="starttls"), backoff_s=0)
    assert (untrusted.sent, untrusted.pending) == (0, 3)
    assert "certificate" in untrusted.errors[0].lower()
    wrong = settings(
        port,
        CHS_SMTP_SECURITY="starttls",
        CHS_SMTP_USER="chs",
        CHS_SMTP_PASSWORD=PASSWORD + "-wrong",
        CHS_SMTP_CA_FILE=str(certificate[0]),
    )
    refused = send_outbox(outbox, wrong, backoff_s=0)
    assert (refused.sent, refused.pending) == (0, 3)
    assert "535" in refused.errors[0]
    assert PASSWORD not in " ".join(refused.errors)
    assert len(refused.errors) == 1  # a refused login stops the batch: no hammering
    assert handler.received == []
    assert len(pending(outbox)) == 3


def test_settings_from_env_are_checked() -> None:
    assert SmtpSettings.from_env({}) is None
    with pytest.raises(ConfigError, match="CHS_SMTP_SECURITY"):
        SmtpSettings.from_env({"CHS_SMTP_HOST": "mail.example.com", "CHS_SMTP_SECURITY": "tls"})
    with pytest.raises(ConfigError, match="unencrypted"):
        SmtpSettings.from_env(
            {"CHS_SMTP_HOST": "mail.example.com", "CHS_SMTP_SECURITY": "none", "CHS_SMTP_USER": "u"}
        )
    with pytest.raises(ConfigError, match="CHS_MAIL_FROM"):
        SmtpSettings.from_env(
            {"CHS_SMTP_HOST": "mail.example.com", "CHS_MAIL_FROM": "a@b.com\r\nBcc: evil@z.com"}
        )
    s = SmtpSettings.from_env({"CHS_SMTP_HOST": "mail.example.com", "CHS_SMTP_PASSWORD": PASSWORD})
    assert s is not None
    assert (s.port, s.security) == (587, "starttls")
    assert PASSWORD not in repr(s)
    assert PASSWORD not in str(s)


# --- retries, outbox and resend ---------------------------------------------------------------


def test_a_refusal_is_retried_with_backoff(smtp_server: Any, outbox: Path) -> None:
    handler = Handler(refuse_first=2)
    waits: list[float] = []
    report = send_outbox(
        outbox, settings(smtp_server(handler)), retries=3, backoff_s=0.5, sleep=waits.append
    )
    assert (report.sent, report.pending) == (3, 0)
    assert waits == [0.5, 1.0]  # exponential backoff between the attempts of the first message
    assert len(handler.received) == 3


def test_a_down_server_leaves_the_outbox_and_a_resend_delivers_once(
    smtp_server: Any, outbox: Path
) -> None:
    port = free_port()  # nothing listens here yet
    waits: list[float] = []
    down = send_outbox(outbox, settings(port), retries=3, backoff_s=0.1, sleep=waits.append)
    assert (down.sent, down.pending) == (0, 3)
    assert len(waits) == 2
    assert len(down.errors) == 1
    assert len(pending(outbox)) == 3
    assert not (outbox / SENT_LOG).exists()

    handler = Handler()
    smtp_server(handler, port=port)
    up = send_outbox(outbox, settings(port), backoff_s=0)
    again = send_outbox(outbox, settings(port), backoff_s=0)
    assert (up.sent, up.pending, again.sent, again.pending) == (3, 0, 0, 0)
    assert len(handler.received) == 3
    assert len(_by_id(handler.received)) == 3
    log = json.loads((outbox / SENT_LOG).read_text())
    assert sorted(log) == sorted(p.name for p in outbox.glob("*.eml"))
    assert all(e["message_id"] in _by_id(handler.received) for e in log.values())


def test_a_rejected_recipient_does_not_block_the_others(smtp_server: Any, outbox: Path) -> None:
    handler = Handler(reject={"ann@example.com"})
    report = send_outbox(outbox, settings(smtp_server(handler)), backoff_s=0)
    assert (report.sent, report.pending) == (2, 1)
    assert "ann@example.com refused (550" in report.errors[0]
    assert [p.name for p in pending(outbox)] == [
        p.name for p in sorted(outbox.glob("*.eml")) if "ann" in p.name
    ]


def test_a_damaged_log_or_a_concurrent_sender_stops_sending(smtp_server: Any, outbox: Path) -> None:
    s = settings(smtp_server(Handler()))
    with (outbox / ".send.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DeliveryError, match="Another process"):
            send_outbox(outbox, s)
    (outbox / SENT_LOG).write_text("{not json")
    with pytest.raises(DeliveryError, match="damaged"):
        send_outbox(outbox, s)


def test_chs_send_delivers_what_is_left(
    smtp_server: Any,
    outbox: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "chs.toml").write_text(
        '[sources.accounts]\nuri = "accounts.csv"\n[output]\ndir = "out"\n'
    )
    (tmp_path / "out" / "2026-11-09").mkdir()  # an older run without an outbox is skipped
    port = free_port()
    for k, v in {
        "CHS_SMTP_HOST": "127.0.0.1",
        "CHS_SMTP_PORT": str(port),
        "CHS_SMTP_SECURITY": "none",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CHS_SMTP_PASSWORD", PASSWORD)
    args = ["send", "--config", str(tmp_path / "chs.toml")]
    monkeypatch.setattr("tasks.mail.smtp.time", SimpleNamespace(sleep=lambda _s: None))
    assert main(args) == 1  # the server is down: nothing sent, the outbox is kept
    handler = Handler()
    smtp_server(handler, port=port)
    assert main(args) == 0
    assert main([*args, "--as-of", AS_OF.isoformat()]) == 0
    out = capsys.readouterr()
    assert len(handler.received) == 3
    assert "3 sent" in out.out
    assert PASSWORD not in out.out + out.err


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_weekly_run_keeps_mail_in_the_outbox_when_the_server_is_down_and_chs_send_delivers(
    demo: Path, smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("CHS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CHS_SMTP_PORT", str(port))
    monkeypatch.setenv("CHS_SMTP_SECURITY", "none")
    monkeypatch.setattr("tasks.mail.smtp.time", SimpleNamespace(sleep=lambda _s: None))
    config = str(demo / "chs.toml")
    r = weekly_flow(WeeklyParams(config_path=config, as_of=DEMO_END, send=True))
    assert r.smtp
    assert r.emails > 2
    assert (r.sent, r.pending) == (0, r.emails)  # the run finished; the mail waits
    outbox = r.out / "outbox"
    assert len(pending(outbox)) == r.emails

    handler = Handler()
    smtp_server(handler, port=port)
    args = ["send", "--config", config, "--as-of", DEMO_END.isoformat()]
    assert main(args) == 0
    assert main(args) == 0  # nothing left: nothing sent twice
    assert len(handler.received) == r.emails
    assert len(_by_id(handler.received)) == r.emails
    stakeholders = [m for m in handler.received if m.rcpt_tos == ["cs-lead@example.com"]]
    assert len(stakeholders) == 1
    assert "report.html" in stakeholders[0].message.get_body(("plain",)).get_content()
