"""Failure alerts: when a flow run fails or crashes, say why, where to look, and to whom.

Every flow (weekly, backfill, back-test) has ``report_failure`` as its ``on_failure`` and
``on_crashed`` hook: it logs the one-sentence cause with the run id, publishes a
``failed-run`` Prefect artifact on the run, posts to the configured Slack/Teams webhooks and
e-mails ``[alerts] recipients``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.logging.loggers import flow_run_logger
from pydantic import ValidationError

from flows.chat import chat_failure_alert
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


def _params(flow_run: Any) -> tuple[str | None, str | None]:
    """Return the run's config path and as-of (or end) date from its parameters."""
    raw = flow_run.parameters or {}
    nested = raw.get("params")
    src = nested if isinstance(nested, dict) else raw
    day = src.get("as_of") or src.get("end")
    path = src.get("config_path")
    return (str(path) if path else None), (str(day) if day else None)


def _artifact(flow_name: str, flow_run: Any, state: Any, cause: str) -> None:
    """Attach a ``failed-run`` markdown artifact to the run (through the API client: a crash
    hook runs outside the run's context, where ``create_markdown_artifact`` cannot be used).
    """
    what = "crashed" if state.is_crashed() else "failed"
    markdown = (
        f"# {flow_name} {what}\n\n**Cause:** {cause}\n\n"
        f"Flow run: `{flow_run.name}` (`{flow_run.id}`), state {state.name}.\n\n"
        "Nothing was published for a date the run had not finished; run it again once "
        "the cause is fixed."
    )
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key="failed-run",
                type="markdown",
                data=markdown,
                description=f"Why this run {what}",
                flow_run_id=flow_run.id,
            )
        )


def report_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` and ``on_crashed`` hook of every flow: log, artifact, chat, e-mail."""
    log = flow_run_logger(flow_run, flow)  # a crash hook runs outside the run's context
    cause = failure_cause(state)
    what = "crashed" if state.is_crashed() else "failed"
    log.error("flow run %s (%s) %s: %s", flow_run.name, flow_run.id, what, cause)
    try:
        _artifact(flow.name, flow_run, state, cause)
    except Exception as err:  # the API may be what broke; the log and the e-mail still say why
        log.warning("no failed-run artifact: %s", err)
    path, day = _params(flow_run)
    if path is None:
        return
    try:
        cfg = load_config(Path(path))
    except (ChsError, ValidationError):
        return  # no readable config, so no recipients; the CLI already reports the cause
    as_of = day or str(datetime.now(UTC).date())
    try:
        chat_failure_alert(cfg, as_of, str(flow_run.id), flow_run.name, cause)
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
        cause,
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
