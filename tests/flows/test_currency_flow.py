"""An account whose currency changes over time: each date's ARR is its record at its rate.

A CRM history export (``latest_by = "snapshot"``) moves account ``a`` from EUR to GBP on
15 February 2026 and ``c`` to CHF, which has no rate, on 20 February. With monthly rates the
home-currency ARR of each date is computed by hand below; a single run of each date and a
backfill over both give it, and the same files.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.backfill import backfill_flow
from flows.params import BackfillParams, WeeklyParams
from flows.weekly import weekly_flow

BEFORE, AFTER = date(2026, 2, 10), date(2026, 3, 3)  # 21 days apart: one backfill step

ACCOUNTS = """\
account_id,name,status,seats,arr,currency,snapshot
a,Acme,active,10,1000,EUR,2026-01-01
a,Acme,active,10,900,GBP,2026-02-15
b,Beta,active,5,500,,2026-01-01
c,Cobalt,active,8,2000,EUR,2026-01-01
c,Cobalt,active,8,3000,CHF,2026-02-20
"""
RATES = """\
currency,rate_to_home,valid_from
EUR,1.10,2026-01-01
EUR,1.20,2026-02-01
EUR,1.15,2026-03-01
GBP,1.25,2026-01-01
GBP,1.30,2026-03-01
"""
# by hand, in USD:
#   10 Feb: a's EUR record at February's 1.20; b has no currency (home); c's EUR at 1.20
#   3 Mar: a's GBP record at March's 1.30; c's CHF record has no rate, so its EUR one at 1.15
EXPECTED = {
    BEFORE: {"a": 1000 * 1.20, "b": 500.0, "c": 2000 * 1.20},
    AFTER: {"a": 900 * 1.30, "b": 500.0, "c": 2000 * 1.15},
}
CHF = "currency: 'CHF' is not convertible: fx_rates has no CHF rate to USD on or before 2026-03-03"


def _config(folder: Path) -> Path:
    (folder / "accounts.csv").write_text(ACCOUNTS)
    (folder / "fx_rates.csv").write_text(RATES)
    config = folder / "chs.toml"
    config.write_text(
        '[sources.accounts]\nuri = "accounts.csv"\nlatest_by = "snapshot"\n\n'
        '[sources.fx_rates]\nuri = "fx_rates.csv"\n\n[currency]\nhome = "USD"\n'
    )
    return config


def _outputs(out: Path) -> dict[str, Any]:
    return {
        "scores": pl.read_parquet(out / "scores.parquet"),
        "kpis": json.loads((out / "kpis.json").read_text()),
        "validation": json.loads((out / "validation.json").read_text()),
        "quarantine": (out / "quarantine" / "accounts.csv").read_text()
        if (out / "quarantine" / "accounts.csv").exists()
        else None,
    }


def _check_by_hand(day: date, got: dict[str, Any]) -> None:
    scores = got["scores"].sort("account_id")
    assert dict(scores.select("account_id", "arr").iter_rows()) == pytest.approx(EXPECTED[day])
    accounts = got["validation"]["datasets"]["accounts"]
    if day == BEFORE:  # the GBP and CHF snapshots do not exist yet
        assert (accounts["rows_read"], accounts["rows_quarantined"]) == (3, 0)
        assert got["quarantine"] is None
    else:  # exactly c's CHF snapshot is quarantined; a's EUR and c's EUR are history
        assert (accounts["rows_read"], accounts["rows_accepted"]) == (5, 4)
        assert (accounts["rows_quarantined"], accounts["rows_superseded"]) == (1, 1)
        quarantined = pl.read_csv(got["quarantine"].encode())
        assert quarantined.select("account_id", "currency", "reason").rows() == [("c", "CHF", CHF)]
        [failed] = accounts["failed_expectations"]
        assert (failed["column"], failed["count"]) == ("currency", 1)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_arr_follows_the_accounts_currency_in_single_runs_and_a_backfill(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    results = backfill_flow(
        BackfillParams(config_path=config, start=BEFORE, end=AFTER, every_days=21)
    )
    assert [r.as_of for r in results] == [BEFORE, AFTER]
    backfilled = {d: _outputs(tmp_path / "out" / d.isoformat()) for d in (BEFORE, AFTER)}
    for day in (BEFORE, AFTER):
        _check_by_hand(day, backfilled[day])
        weekly_flow(WeeklyParams(config_path=config, as_of=day))
        single = _outputs(tmp_path / "out" / day.isoformat())
        _check_by_hand(day, single)
        assert_frame_equal(single["scores"], backfilled[day]["scores"])
        for part in ("kpis", "validation", "quarantine"):
            assert single[part] == backfilled[day][part], (day, part)
