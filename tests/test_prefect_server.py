"""Integration: a real `prefect server` on loopback, `chs serve`, a triggered run and its artifacts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.conftest import DEMO_END

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("prefect server did not become healthy")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Start `prefect server start` on a free loopback port with its own PREFECT_HOME."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    env.pop("CHS_SMTP_HOST", None)
    proc = subprocess.Popen(
        [
            str(BIN / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-ui",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(api, proc)
        yield env
    finally:
        _stop(proc)


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
    finally:
        _stop(serve)
    assert cron == "0 6 * * 1"
    assert state == "COMPLETED"
    assert keys == ["at-risk-accounts", "weekly-summary"]
    assert (demo / "out" / DEMO_END.isoformat() / "scores.parquet").is_file()
