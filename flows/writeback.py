"""The weekly flow's write-back step: when ``[writeback] apply = true``, write the date's
changed values to the CRM after the run is stored (SPEC 10.2).
"""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger
from prefect.cache_policies import NONE

from flows.step import step
from tasks.config import Config
from tasks.errors import ChsError
from tasks.writeback.run import WritebackResult, writeback


def describe(r: WritebackResult) -> list[str]:
    """Say in lines what a write-back did (the CLI prints them, the flow logs them)."""
    if not r.applied:
        return [
            f"{r.as_of}: {r.values:,} changed values on {r.accounts:,} accounts would be written "
            f"to {r.target} (dry run; --apply sends them): {r.csv}"
        ]
    lines = [
        f"{r.as_of}: {r.target}: {r.written:,} of {r.accounts:,} changed accounts written "
        f"({r.values:,} values); details in {r.csv}"
    ]
    lines += [f"  not written: {crm_id}: {why}" for crm_id, why in sorted(r.failed.items())[:20]]
    if len(r.failed) > 20:
        lines.append(
            f"  ... and {len(r.failed) - 20} more (see the CSV); the next run retries them"
        )
    return lines


@step(name="writeback", cache_policy=NONE)
def write_back(cfg: Config, as_of: date) -> WritebackResult | None:
    """Write the date's changed scores back to the CRM when ``[writeback] apply`` is true."""
    if cfg.writeback is None or not cfg.writeback.apply:
        return None
    log = get_run_logger()
    try:
        result = writeback(cfg, as_of, apply=True)
    except ChsError as err:  # the date is stored and published; only the write-back is missing
        log.warning("write-back not done: %s `chs writeback --apply` retries it.", err)
        return None
    for line in describe(result):
        (log.warning if result.failed else log.info)(line)
    return result
