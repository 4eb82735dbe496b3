"""Integration: a real `prefect server` on loopback, `chs serve`, a triggered run and its artifacts."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.server import local_server, stop_process
from tests.conftest import DEMO_END

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real `prefect server` on a free loopback port with its own PREFECT_HOME."""
    with local_server(tmp_path / "prefect-home") as env:
        env.pop("CHS_SMTP_HOST", None)
        env["PREFECT_RUNNER_POLL_FREQUENCY"] = "2"  # for `chs serve`: picks up runs sooner
        yield env


async def _run_and_inspect(as_of: str) -> tuple[str, list[str], str | None]:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("customer-health-weekly/weekly")
        cron = (
            getattr(deployment.schedules[0].schedule, "cron", None)
            if deployment.schedules
            else None
        )
        run = await run_deployment(
            "customer-health-weekly/weekly",
            parameters={"params": {"as_of": as_of, "send": False}},
            timeout=240,
            poll_interval=2,
        )
        # the 3.8 client sends nulls that its own server rejects on /artifacts/filter: ask directly
        body = {
            "artifacts": {"flow_run_id": {"any_": [str(run.id)]}},
            "limit": 50,
            "sort": "CREATED_DESC",
        }
        arts = (await client._client.post("/artifacts/filter", json=body)).json()
        return (
            str(run.state.type.value if run.state else "UNKNOWN"),
            sorted(a["key"] for a in arts if a["key"]),
            cron,
        )


@pytest.mark.slow
# its own waits add up to 390 s (server 90, deployments 60, the run 240): more than the 300 s
@pytest.mark.timeout(600)
def test_serve_and_trigger_a_weekly_run(prefect_server: dict[str, str], demo: Path) -> None:
    serve = subprocess.Popen(
        [str(BIN / "chs"), "serve", "--config", str(demo / "chs.toml")],
        env=prefect_server,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until `chs serve` has registered its deployments
            r = httpx.post(
                f"{prefect_server['PREFECT_API_URL']}/deployments/filter", json={}, timeout=5
            )
            if len(r.json()) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        # temporary_settings wins over the session's prefect_test_harness, if one is active
        with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
            state, keys, cron = asyncio.run(_run_and_inspect(DEMO_END.isoformat()))
        # Prefect's async client leaves a connection to the server for the garbage collector:
        # collect it here, where its ResourceWarning is known, not in whichever test runs next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    finally:
        stop_process(serve)
    assert cron == "0 6 * * 1"
    assert state == "COMPLETED"
    assert keys == ["at-risk-accounts", "weekly-summary"]
    assert (demo / "out" / DEMO_END.isoformat() / "scores.parquet").is_file()
