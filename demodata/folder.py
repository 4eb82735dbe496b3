"""``chs demo``: write realistic sample data and its config to a folder."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from demodata.generate import generate_demo

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

[sources.feedback]                  # reviews, social posts, complaints (English and Chinese)
uri = "feedback.csv"
datetime_format = "%Y-%m-%dT%H:%M:%S"

[text]                              # sentiment and themes of feedback, comments, tickets
complaint_values = {{type = ["complaint"]}}

[output]
dir = "{out}"
history = "duckdb:///{out}/history.duckdb"

[report]
title = "Customer health"
company = "Demo Co"
recipients = ["cs-lead@example.com"]
csm_digests = true
"""


def _plant_bad_rows(path: Path, end: date) -> None:
    """Append the kinds of rows real survey exports carry, so the demo shows its quarantine."""
    day = end.isoformat()
    bad = [
        f"R9000001,A00001,nps,11,{day} 09:00:00,A00001-U001,score off the 0-10 scale",
        f"R9000002,A99999,nps,9,{day} 09:05:00,A99999-U001,an account the CRM does not know",
        f"R9000003,A00002,nps,n/a,{day} 09:10:00,A00002-U001,a score that is not a number",
        f"R9000004,A00003,poll,5,{day} 09:15:00,A00003-U001,a survey type with no scale",
    ]
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(bad) + "\n")


def make_demo(
    folder: Path, accounts: int, seed: int, end: date, events_per_account: int, out: str = "../out"
) -> Path:
    """Generate the demo data into ``folder`` and return the path of its config file."""
    folder.mkdir(parents=True, exist_ok=True)
    generate_demo(folder, accounts, seed=seed, end=end, events_per_account=events_per_account)
    _plant_bad_rows(folder / "surveys" / "nps.csv", end)
    config = folder / "chs.toml"
    config.write_text(DEMO_CONFIG.format(out=out), encoding="utf-8")
    return config
