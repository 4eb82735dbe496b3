"""Scale-out: compute the features of N account partitions as separate tasks on Dask.

Accounts are split by a stable hash of their id (``tasks.partition``); every feature but the
population-fitted purchase model depends on one account's rows only, so each partition is
computed alone, on a Dask worker, and the partitions are joined again before anything that
looks across accounts (the purchase model, percentile normalisation, KPIs). The joined frame
is sorted like the single-process one, and sums run in integers, so the features are identical;
the scores may still differ by 0.1 at a rounding step for a few accounts, because scoring adds
with ``pl.sum_horizontal``, whose order follows memory layout (BENCHMARKS.md, "Identical
scores").
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any

import polars as pl
from prefect import get_run_logger
from prefect.cache_policies import NONE

from flows.params import RunOptions
from flows.step import step
from tasks.config import Config
from tasks.errors import ConfigError, SourceError
from tasks.features.build import add_population_features, build_features_many
from tasks.partition import split


@step(name="features-partition", cache_policy=NONE, persist_result=False)
def features_partition(
    cfg: Config, data: dict[str, pl.DataFrame], dates: list[date], part: int
) -> pl.DataFrame:
    """Compute the per-account features of one partition of the accounts."""
    return build_features_many(data, cfg, dates, population=False)


def dask_runner(opts: RunOptions) -> Any:
    """Return the Dask task runner: the scheduler at ``dask_address``, or a local cluster."""
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ConfigError("partitions > 1 needs prefect-dask; reinstall the project.") from None
    if opts.dask_address:
        return DaskTaskRunner(address=opts.dask_address, client_kwargs={"timeout": "10s"})
    workers = max(1, min(opts.partitions, os.cpu_count() or 1))
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def partitioned_features(
    cfg: Config, data: dict[str, pl.DataFrame], dates: list[date], opts: RunOptions
) -> pl.DataFrame:
    """Compute every account's features in ``opts.partitions`` tasks on Dask and join them."""
    log = get_run_logger()
    parts = split(data, opts.partitions)
    where = (
        f"the Dask scheduler at {opts.dask_address}"
        if opts.dask_address
        else "a local Dask cluster"
    )
    log.info("features in %d partitions on %s", len(parts), where)
    try:
        with dask_runner(opts) as runner:
            futures = [
                runner.submit(
                    features_partition,
                    parameters={"cfg": cfg, "data": part, "dates": dates, "part": i},
                )
                for i, part in enumerate(parts)
            ]
            frames = [f.result() for f in futures]
    except (OSError, TimeoutError) as err:  # the feature code does no I/O: this is Dask's
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fix = "check --dask / dask_address" if opts.dask_address else "run without --partitions"
        raise SourceError(
            f"{where[0].upper()}{where[1:]} could not run the partitions ({why}); {fix}.",
            transient=True,
        ) from None
    joined = pl.concat(frames, how="vertical").sort("as_of", "account_id")
    return add_population_features(joined, data, cfg, dates)
