"""A failed weekly run e-mails [alerts] recipients the one-sentence cause and the run id."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tasks.errors import ValidationGateError
from tests.conftest import DEMO_END


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Inbox]:
    """A real SMTP server on loopback; CHS_SMTP_* point at it."""
    inbox = _Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    monkeypatch.setenv("CHS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CHS_SMTP_PORT", str(port))
    monkeypatch.setenv("CHS_SMTP_SECURITY", "none")
    monkeypatch.setenv("CHS_MAIL_FROM", "chs@example.com")
    yield inbox
    ctl.stop()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_validation_gate_failure_sends_an_alert(demo: Path, smtp_inbox: _Inbox) -> None:
    config = demo / "chs.toml"
    config.write_text(config.read_text() + '\n[alerts]\nrecipients = ["ops@example.com"]\n')
    nps = demo / "surveys" / "nps.csv"
    lines = nps.read_text().splitlines()
    # make four in five NPS answers impossible (42 on a 0-10 scale): the dataset gate trips
    broken = [lines[0]] + [
        ",".join(f if i != 3 else "42" for i, f in enumerate(ln.split(","))) if n % 5 else ln
        for n, ln in enumerate(lines[1:])
    ]
    nps.write_text("\n".join(broken) + "\n")
    (demo / "surveys" / "csat.csv").unlink()
    (demo / "surveys" / "ces.csv").unlink()
    with pytest.raises(ValidationGateError, match="survey_responses"):
        weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END))
    assert not (demo / "out" / DEMO_END.isoformat()).exists()  # nothing published for the date
    assert len(smtp_inbox.messages) == 1
    rcpt, msg = smtp_inbox.messages[0]
    assert rcpt == ["ops@example.com"]
    assert msg["Subject"].startswith(f"Customer health run FAILED for {DEMO_END}")
    body = msg.get_payload(decode=True).decode()
    assert "survey_responses" in body
    assert "max_invalid_share" in body
    assert "Flow run:" in body
