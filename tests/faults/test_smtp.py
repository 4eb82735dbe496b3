"""A mail server that misbehaves: the run's e-mails stay in the outbox, the exit status and one
sentence say so, and a later `chs send` delivers each exactly once.

The servers are real, on loopback: aiosmtpd for refusals (421/451), a slow acceptance and a
refused login, and a socket server that hangs up in the middle of DATA.
"""

from __future__ import annotations

import asyncio
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from flows.cli.main import main
from tasks.mail.outbox import pending
from tests.conftest import DEMO_END
from tests.faults.conftest import Smtp
from tests.tasks.mail.test_deliver import PASSWORD, Handler, _authenticator, _by_id, free_port

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@dataclass
class Refusing(Handler):
    """Answer DATA with the given replies first (421, 451, ...), then accept."""

    answers: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        if self.answers:
            return self.answers.pop(0)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Slow(Handler):
    """Take ``delay`` seconds before accepting; keep a message only if the client is still
    there to hear the 250 (while ``slow``).
    """

    delay: float = 3.0
    slow: bool = True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        if self.slow:
            await asyncio.sleep(self.delay)
            if server.transport is None or server.transport.is_closing():
                return "451 4.4.2 the client went away"
        return await super().handle_DATA(server, session, envelope)


class _HangUpInData(socketserver.StreamRequestHandler):
    """Speak SMTP up to DATA, read one line of the message, then close the connection."""

    def handle(self) -> None:
        self.wfile.write(b"220 hangup.test ESMTP\r\n")
        for line in self.rfile:
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 end with <CRLF>.<CRLF>\r\n")
                self.rfile.readline()
                return  # the connection drops mid-message
            if verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(
                b"250 hangup.test\r\n" if verb in (b"EHLO", b"HELO") else b"250 OK\r\n"
            )


@dataclass
class Fault:
    """A misbehaving server on ``port``; ``recover()`` makes the port a working server."""

    port: int
    handler: Handler
    recover: Any
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def fault(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fault]:
    """Start the server of the case named by the test's parameter; stop everything after."""
    kind = request.param
    port = free_port()
    stops: list[Any] = []

    def controller(handler: Handler, **kwargs: Any) -> None:
        c = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        c.start()
        stops.append(c.stop)

    env: dict[str, str] = {}
    if kind == "refusals":
        # three attempts of the run, three of the first `chs send`; then it works again
        handler: Handler = Refusing(answers=["421 4.3.2 busy", "451 4.3.0 try later"] * 3)
        controller(handler)
        recover: Any = lambda: None  # noqa: E731 (it recovers by itself after six refusals)
    elif kind == "slow":
        handler = Slow()
        controller(handler)
        env = {"CHS_SMTP_TIMEOUT": "1"}

        def recover() -> None:
            handler.slow = False  # type: ignore[attr-defined]
    elif kind == "auth":
        handler = Handler()
        controller(handler, authenticator=_authenticator, auth_require_tls=False)
        env = {"CHS_SMTP_USER": "chs", "CHS_SMTP_PASSWORD": "wrong-password"}

        def recover() -> None:
            monkeypatch.setenv("CHS_SMTP_PASSWORD", PASSWORD)  # the operator fixes it
    else:  # hang-up mid-DATA, then a working server on the same port
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        raw = socketserver.ThreadingTCPServer(("127.0.0.1", port), _HangUpInData)
        raw.daemon_threads = True
        threading.Thread(target=raw.serve_forever, daemon=True).start()
        handler = Handler()

        def stop_raw() -> None:
            raw.shutdown()
            raw.server_close()

        stops.append(stop_raw)

        def recover() -> None:
            stop_raw()
            controller(handler)

    smtp_env = {**Smtp(handler, port).env, **env}
    for k, v in smtp_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("tasks.mail.smtp.time", SimpleNamespace(sleep=lambda _s: None))
    try:
        yield Fault(port, handler, recover, smtp_env)
    finally:
        for stop in reversed(stops):
            stop()


@pytest.mark.parametrize("fault", ["refusals", "hang-up", "slow", "auth"], indirect=True)
def test_a_failing_mail_server_keeps_the_outbox_and_chs_send_delivers_once(
    fault: Fault, demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(demo / "chs.toml")
    day = DEMO_END.isoformat()
    assert main(["run", "--config", config, "--as-of", day, "--send"]) == 1
    err = capsys.readouterr().err
    outbox = demo / "out" / day / "outbox"
    emails = sorted(outbox.glob("*.eml"))
    assert len(emails) > 2
    sentence = [line for line in err.splitlines() if line.startswith("chs: error:")]
    assert sentence == [
        f"chs: error: {len(emails)} of {len(emails)} e-mails could not be delivered (the "
        f"server's answer is in the warnings above) and wait in {outbox}; "
        f"`chs send --as-of {day}` delivers them."
    ]
    assert "Traceback" not in err
    assert pending(outbox) == emails
    assert fault.handler.received == []

    send = ["send", "--config", config]
    assert main(send) == 1  # still failing: nothing lost, exit status 1
    assert pending(outbox) == emails
    fault.recover()
    assert main(send) == 0
    assert main(send) == 0  # nothing left, nothing sent twice
    assert pending(outbox) == []
    assert len(fault.handler.received) == len(emails)
    assert len(_by_id(fault.handler.received)) == len(emails)
