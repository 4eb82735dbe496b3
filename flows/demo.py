"""``chs demo``: write realistic sample data and its config to a folder."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tasks.demo import generate_demo

DEMO_CONFIG = """\
# Demo config written by `chs demo`. Relative paths are relative to this file.

[sources.accounts]
uri = "duckdb:///crm.duckdb"
table = "accounts"

[sources.orders]
uri = "duckdb:///crm.duckdb"
table = "orders"

[sources.tickets]
uri = "duckdb:///crm.duckdb"
table = "tickets"

[sources.survey_responses]          # survey tool exports: their own column names, mapped here
uri = "surveys/*.csv"
encoding = "utf-8"
datetime_format = "%Y-%m-%d %H:%M:%S"
[sources.survey_responses.columns]
response_id = "Response ID"
account_id = "Account"
survey = "Survey Type"
score = "Score"
submitted_at = "Submitted"
respondent_id = "Respondent"
comment = "Comment"

[sources.usage_events]
uri = "analytics/events-*.parquet"

[sources.outcomes]
uri = "outcomes.jsonl"

[output]
dir = "{out}"
history = "duckdb:///{out}/history.duckdb"

[report]
title = "Customer health"
company = "Demo Co"
recipients = ["cs-lead@example.com"]
csm_digests = true
"""


def make_demo(
    folder: Path, accounts: int, seed: int, end: date, events_per_account: int, out: str = "../out"
) -> Path:
    """Generate the demo data into ``folder`` and return the path of its config file."""
    folder.mkdir(parents=True, exist_ok=True)
    generate_demo(folder, accounts, seed=seed, end=end, events_per_account=events_per_account)
    config = folder / "chs.toml"
    config.write_text(DEMO_CONFIG.format(out=out), encoding="utf-8")
    return config
