"""Scale-out: features of account partitions, computed apart and joined, equal the single run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from prefect.settings import PREFECT_SERVER_ALLOW_EPHEMERAL_MODE, temporary_settings
from pydantic import ValidationError

from flows.cli.main import main
from flows.params import BackfillParams, WeeklyParams
from flows.weekly import weekly_flow
from tasks.backfill import SpanWindow, dates_between
from tasks.config import load_config
from tasks.features.build import add_population_features, build_features_many
from tasks.partition import split
from tasks.schemas import DATASETS
from tasks.sources.plan import REASON, ROW
from tasks.sources.read import extract_dataset
from tests.conftest import DEMO_END
from tests.tasks.clv.test_purchase_model import AS_OF, purchase_data


def test_partitions_joined_equal_the_whole(demo_template: Path) -> None:
    cfg = load_config(demo_template / "chs.toml")
    first = DEMO_END - timedelta(weeks=8)
    window = SpanWindow(DEMO_END, datetime(2030, 1, 1), first=first)
    data = {
        n: extract_dataset(n, cfg, window).drop(ROW, REASON) for n in DATASETS if n in cfg.sources
    }
    days = dates_between(first, DEMO_END, 7)
    whole = build_features_many(data, cfg, days)
    parts = [build_features_many(p, cfg, days, population=False) for p in split(data, 5)]
    assert all(p.height for p in parts)  # every partition has accounts of its own
    joined = pl.concat(parts).sort("as_of", "account_id")
    assert_frame_equal(add_population_features(joined, data, cfg, days), whole)


def test_the_purchase_model_is_fitted_on_every_partition_together() -> None:
    data, cfg = purchase_data()
    days = [AS_OF - timedelta(weeks=4), AS_OF]
    whole = build_features_many(data, cfg, days)
    assert whole["p_alive"].null_count() == 0
    parts = split(data, 4)
    alone = [build_features_many(p, cfg, days, population=False) for p in parts]
    joined = pl.concat(alone).sort("as_of", "account_id")
    assert_frame_equal(add_population_features(joined, data, cfg, days), whole)
    # fitted on each partition alone, the model would give other values
    apart = pl.concat(build_features_many(p, cfg, days) for p in parts).sort("as_of", "account_id")
    assert not apart["p_alive"].equals(whole["p_alive"])


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_partitioned_run_on_dask_equals_the_single_run(demo: Path, tmp_path: Path) -> None:
    config = demo / "chs.toml"
    single = weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END))
    scores = pl.read_parquet(single.out / "scores.parquet")
    kpis = json.loads((single.out / "kpis.json").read_text())
    report = (single.out / "report.html").read_text()

    split_run = weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END, partitions=3))
    assert split_run.accounts == single.accounts
    assert_frame_equal(pl.read_parquet(split_run.out / "scores.parquet"), scores)
    assert json.loads((split_run.out / "kpis.json").read_text()) == kpis
    assert (split_run.out / "report.html").read_text() == report


def test_flow_parameters_are_checked() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        WeeklyParams(config_path="chs.toml", partitions=0)
    with pytest.raises(ValidationError, match="before start"):
        BackfillParams(config_path="chs.toml", start=DEMO_END, end=DEMO_END - timedelta(days=1))
    with pytest.raises(ValidationError, match="Extra inputs"):
        WeeklyParams.model_validate({"config_path": "chs.toml", "partition": 2})


def test_config_path_defaults_to_chs_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHS_CONFIG", "/etc/chs/prod.toml")
    assert WeeklyParams().config_path == "/etc/chs/prod.toml"
    monkeypatch.delenv("CHS_CONFIG")
    assert WeeklyParams().config_path == "chs.toml"


def test_bad_partition_options_are_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--partitions", "0"])
    assert exit_.value.code == 2
    assert "--partitions: '0' is not a whole number from 1 to 1024" in capsys.readouterr().err
    # Without an API (no harness in make test-fast) `chs run` would start a temporary Prefect
    # server before it reads its options; an option error needs none.
    with temporary_settings({PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}):
        assert main(["run", "--dask", "tcp://127.0.0.1:8786"]) == 2
    assert capsys.readouterr().err.strip() == (
        "chs: error: --dask needs --partitions N with N > 1."
    )


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_an_unreachable_dask_scheduler_is_one_sentence(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--config", str(demo / "chs.toml"), "--as-of", DEMO_END.isoformat()]
    assert main([*args, "--partitions", "2", "--dask", "tcp://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        "chs: error: The Dask scheduler at tcp://127.0.0.1:1 could not run the partitions ("
    )
    assert err.endswith("); check --dask / dask_address.")
    assert not (demo / "out" / DEMO_END.isoformat()).exists()  # nothing published
