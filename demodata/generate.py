"""Generate seeded, realistic sample data for ``chs demo``.

The data follow from a latent, time-varying health per account: usage, tickets, surveys,
orders and outcomes all read it, and churn follows it with noise, so scores, trends and a
churn back-test on the demo mean something. Everything is vectorised with numpy; the only
Python loops run over months, event names or word lists.

Files written into ``out_dir``::

    crm.duckdb                       tables accounts (+ custom column plan), orders, tickets
    surveys/{nps,csat,ces}.csv       survey-tool exports with their own (non-canonical) headers
    analytics/events-YYYY-MM.parquet product events, one file per calendar month, sorted by ts
    outcomes.jsonl                   quarterly goal measurements for about 60% of accounts
    feedback.csv                     reviews, social posts and complaints (English, Chinese)

The window is ``months`` calendar months, the last one being the month of ``end``, which is
cut at ``end`` 23:59:59.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from demodata.crm import accounts_frame, orders_frame, tickets_frame
from demodata.events import write_events
from demodata.feedback import feedback_frame
from demodata.population import SURVEYS, demo_window, population
from demodata.surveys import outcomes_frame, surveys_frame

_SURVEY_HEADERS = {
    "response_id": "Response ID",
    "account_id": "Account",
    "survey": "Survey Type",
    "score": "Score",
    "submitted_at": "Submitted",
    "respondent_id": "Respondent",
    "comment": "Comment",
}


def _write_crm(path: Path, tables: dict[str, pl.DataFrame]) -> None:
    """Write the CRM tables into a fresh DuckDB file (DATE and TIMESTAMP columns)."""
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        for name, frame in tables.items():
            con.register("_demo_tmp", frame.to_arrow())
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _demo_tmp')
            con.unregister("_demo_tmp")
    finally:
        con.close()


def _write_surveys(folder: Path, surveys: pl.DataFrame) -> None:
    """Write one survey-tool CSV export per survey type, with the tool's own headers."""
    folder.mkdir(parents=True, exist_ok=True)
    export = surveys.with_columns(
        score=pl.col("score").cast(pl.Int64),
        submitted_at=pl.col("submitted_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
    ).rename(_SURVEY_HEADERS)
    for kind in SURVEYS:
        export.filter(pl.col("Survey Type") == kind).write_csv(folder / f"{kind}.csv")


def _write_outcomes(path: Path, outcomes: pl.DataFrame) -> None:
    """Write outcomes as JSON Lines with ISO datetime strings."""
    outcomes.with_columns(
        measured_at=pl.col("measured_at").dt.strftime("%Y-%m-%dT%H:%M:%S")
    ).write_ndjson(path)


def generate_demo(
    out_dir: Path,
    n_accounts: int = 2000,
    *,
    seed: int = 7,
    end: date,
    months: int = 15,
    events_per_account: int = 200,
) -> dict[str, int]:
    """Write seeded sample data into ``out_dir`` and return the row count of each dataset."""
    if n_accounts < 1 or months < 1 or events_per_account < 0:
        raise ValueError("n_accounts and months must be positive, events_per_account >= 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    win = demo_window(date(end.year, end.month, end.day), months)
    # One independent stream per dataset, so changing one generator leaves the others alone.
    streams = ("pop", "acc", "ord", "tic", "srv", "out", "evt", "fbk")
    rngs = {k: np.random.default_rng([seed, i]) for i, k in enumerate(streams)}
    pop = population(rngs["pop"], n_accounts, win)
    tables = {
        "accounts": accounts_frame(rngs["acc"], pop, win),
        "orders": orders_frame(rngs["ord"], pop, win),
        "tickets": tickets_frame(rngs["tic"], pop, win),
    }
    surveys = surveys_frame(rngs["srv"], pop, win)
    outcomes = outcomes_frame(rngs["out"], pop, win)
    _write_crm(out_dir / "crm.duckdb", tables)
    _write_surveys(out_dir / "surveys", surveys)
    _write_outcomes(out_dir / "outcomes.jsonl", outcomes)
    n_events = write_events(rngs["evt"], pop, win, events_per_account, out_dir / "analytics")
    feedback = feedback_frame(rngs["fbk"], pop, win)
    feedback.with_columns(pl.col("created_at").dt.strftime("%Y-%m-%dT%H:%M:%S")).write_csv(
        out_dir / "feedback.csv"
    )
    return {
        **{name: frame.height for name, frame in tables.items()},
        "survey_responses": surveys.height,
        "usage_events": n_events,
        "outcomes": outcomes.height,
        "feedback": feedback.height,
    }
