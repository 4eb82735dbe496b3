"""Orchestration overhead of the weekly flow: the whole run minus the sum of its task times.

    .venv/bin/python benchmarks/overhead.py --config demo/chs.toml --as-of 2026-11-23 --repeats 3

Runs the real weekly flow (Prefect engine and API; the temporary server unless
PREFECT_API_URL names one) ``repeats`` times in one process, then reads each flow run and its
task runs back from the API. Per run it reports:

- ``call_s``: wall time of the flow call in this process;
- ``flow_run_s``: the flow run's own run time, as Prefect records it;
- ``tasks_s``: the sum of its task runs' run times (tasks run one after the other here);
- ``overhead_s``: ``flow_run_s - tasks_s``, the time the flow spends outside its tasks
  (creating task runs, state changes, logging, artifacts, the flow body's own Python);
- ``call_overhead_s``: ``call_s - tasks_s``, which adds creating the flow run and, on the
  first call, starting the temporary API server.

Prints one JSON object with every run and the medians of the runs after the first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect import get_client  # noqa: E402
from prefect.client.schemas.objects import TaskRun  # noqa: E402

from flows.params import WeeklyParams  # noqa: E402
from flows.weekly import weekly_flow  # noqa: E402


async def _times(flow_run_id: UUID) -> tuple[float, float, int]:
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        # the 3.8 client sends "sort": null, which its own server rejects: ask directly
        body = {
            "flow_runs": {"id": {"any_": [str(flow_run_id)]}},
            "limit": 200,
            "sort": "EXPECTED_START_TIME_ASC",
        }
        response = await client._client.post("/task_runs/filter", json=body)
        response.raise_for_status()
        tasks = [TaskRun.model_validate(t) for t in response.json()]
    total = sum(t.total_run_time.total_seconds() for t in tasks)
    return run.total_run_time.total_seconds(), total, len(tasks)


def measure(config: Path, as_of: date) -> dict[str, Any]:
    """Run the weekly flow once and return its times."""
    t = time.perf_counter()
    state = weekly_flow(WeeklyParams(config_path=str(config), as_of=as_of), return_state=True)
    call = time.perf_counter() - t
    if not state.is_completed():
        raise SystemExit(f"the weekly flow ended {state.type.value}: {state.message}")
    flow_id = state.state_details.flow_run_id
    assert flow_id is not None
    flow_s, tasks_s, n = asyncio.run(_times(flow_id))
    return {
        "call_s": round(call, 2),
        "flow_run_s": round(flow_s, 2),
        "tasks_s": round(tasks_s, 2),
        "overhead_s": round(flow_s - tasks_s, 2),
        "call_overhead_s": round(call - tasks_s, 2),
        "task_runs": n,
    }


def main() -> None:
    """Measure the runs the command line asks for and print them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--as-of", type=date.fromisoformat, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = [measure(args.config, args.as_of) for _ in range(max(1, args.repeats))]
    later = runs[1:] or runs
    medians = {k: round(statistics.median(r[k] for r in later), 2) for k in runs[0]}
    print(json.dumps({"config": str(args.config), "runs": runs, "median_after_first": medians}))


if __name__ == "__main__":
    main()
