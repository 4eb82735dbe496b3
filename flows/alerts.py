"""Failure alerts: when a run fails, e-mail ``[alerts] recipients`` the one-sentence cause."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from pydantic import ValidationError

from flows.chat import chat_failure_alert
from flows.params import WeeklyParams
from tasks.config import load_config
from tasks.errors import ChsError
from tasks.mail.message import header_safe, valid_address
from tasks.mail.smtp import SmtpSettings, send_outbox


def failure_cause(state: Any) -> str:
    """Return the one sentence that says why the run failed."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the state may carry no result at all; its message still says why
        exc = None
    if isinstance(exc, ChsError):
        return str(exc)
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return str(state.message or "the run failed")


def alert_message(
    sender: str, to: list[str], as_of: str, run_id: str, run_name: str, cause: str
) -> EmailMessage:
    """Build the alert e-mail: the cause, the run's id and where to look."""
    msg = EmailMessage()
    msg["From"] = header_safe(sender)
    msg["To"] = ", ".join(a for a in to if valid_address(a))
    msg["Subject"] = header_safe(f"Customer health run FAILED for {as_of}: {cause}", limit=180)
    msg["Date"] = formatdate()
    msg["Message-ID"] = make_msgid(domain="chs.local")
    msg.set_content(
        f"The customer health run for {as_of} failed; no scores or e-mails were published for that date.\n\n"
        f"Cause: {cause}\n\nFlow run: {run_name} ({run_id})\n"
    )
    return msg


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure hook of the weekly flow."""
    log = get_run_logger()
    raw = (flow_run.parameters or {}).get("params") or {}
    try:
        params = WeeklyParams.model_validate(raw)
        cfg = load_config(Path(params.config_path))
    except (ChsError, ValidationError):
        return  # no readable config, so no recipients; the CLI already reports the cause
    as_of = str(params.as_of or datetime.now(UTC).date())
    try:
        chat_failure_alert(cfg, as_of, str(flow_run.id), flow_run.name, failure_cause(state))
    except ChsError as err:  # a chat setting must not keep the e-mail alert from going out
        log.warning("no chat alert: %s", err)
    if not cfg.alerts.recipients:
        return
    smtp = SmtpSettings.from_env()
    msg = alert_message(
        smtp.sender if smtp else "customer-health@localhost",
        cfg.alerts.recipients,
        as_of,
        str(flow_run.id),
        flow_run.name,
        failure_cause(state),
    )
    outbox = cfg.out_dir / "alerts"
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{flow_run.id}.eml").write_bytes(msg.as_bytes())
    if smtp is None:
        log.warning("failure alert written to %s (CHS_SMTP_HOST is not set)", outbox)
        return
    sent, left = send_outbox(outbox, smtp)
    log.info(
        "failure alert sent to %d recipient(s); %d alert(s) still waiting",
        len(cfg.alerts.recipients),
        left,
    )
