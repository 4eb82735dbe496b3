"""Every flow reports a failure or a crash: the cause and run id in its log, a ``failed-run``
artifact on the run, and an e-mail to ``[alerts] recipients`` (real Prefect engine, real SMTP).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
)

from flows.alerts import report_failure
from flows.backfill import backfill_flow
from flows.backtest import backtest_flow
from flows.params import BackfillParams
from flows.weekly import weekly_flow
from tests.conftest import DEMO_END
from tests.faults.conftest import Smtp

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _failed_run_artifact(run_id: UUID) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["failed-run"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
            )
        )
    assert len(found) == 1
    return str(found[0].data)


def test_every_flow_reports_failures_and_crashes() -> None:
    for f in (weekly_flow, backfill_flow, backtest_flow):
        assert report_failure in f.on_failure_hooks, f.name
        assert report_failure in f.on_crashed_hooks, f.name


def test_a_failed_backfill_has_an_artifact_and_alerts_with_cause_and_run_id(
    demo: Path, smtp: Smtp
) -> None:
    config = demo / "chs.toml"
    config.write_text(config.read_text() + '\n[alerts]\nrecipients = ["ops@example.com"]\n')
    (demo / "outcomes.jsonl").unlink()  # a source that is gone: the backfill fails
    params = BackfillParams(
        config_path=str(config), start=DEMO_END - timedelta(days=7), end=DEMO_END
    )
    state: Any = backfill_flow(params, return_state=True)
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    text = _failed_run_artifact(run_id)
    assert "outcomes.jsonl" in text
    assert str(run_id) in text
    [alert] = smtp.handler.received
    assert alert.rcpt_tos == ["ops@example.com"]
    body = alert.message.get_body(("plain",)).get_content()
    assert "outcomes.jsonl" in body
    assert str(run_id) in body
    assert str(DEMO_END) in alert.message["Subject"]


class _Killed(BaseException):
    """What the engine sees when its process is torn down under it."""


@flow(name="chs-test-crash", on_crashed=[report_failure])
def _crashing() -> None:
    raise _Killed("the worker went away")


def test_a_crashed_run_has_an_artifact_with_its_cause() -> None:
    with pytest.raises(_Killed):
        _crashing()
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["chs-test-crash"]))
        )
    assert run.state is not None
    assert run.state.is_crashed()
    text = _failed_run_artifact(run.id)
    assert "crashed" in text
    assert "the worker went away" in text
