"""``chs init``: write a commented starter config that lists every key with its default.

The defaults are read from the config model and ``tasks/defaults.py``, so the file never
drifts from what the pipeline does when a key is left out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tasks.config import (
    AlertsConfig,
    CalibrationConfig,
    CurrencyConfig,
    EmailConfig,
    KpiConfig,
    OutputConfig,
    PlaybookSettings,
    ReportConfig,
    RollupConfig,
    ScheduleConfig,
    ScoringConfig,
    SegmentsConfig,
    SurveyScale,
    TextConfig,
    ValidationConfig,
    WindowsConfig,
)
from tasks.defaults import default_actions, default_measures
from tasks.errors import ConfigError
from tasks.schemas import DEFAULT_SCALES

_HEADER = """\
# Customer health score: starter config written by `chs init`.
#
# Every key is listed with its default value; a key you leave out keeps that default, and a
# line starting with # is an example to copy. Relative paths are relative to this file; in
# database URLs duckdb:///rel/path is relative and duckdb:////abs/path absolute.
# Credentials never go in this file: write ${ENV} in a uri, or use password_env or
# password_secret (a Prefect Secret block). See .env.example for the environment variables.
"""
_SOURCES = """\
# ---------------------------------------------------------------------------------------------
# Sources: one table per canonical dataset. Only accounts is required; delete the tables of
# the datasets you do not have (the score re-weights over what exists and says so).
# Each example below shows another kind of source; every kind works for every dataset.
#
#   uri              a file or glob (.csv .parquet .jsonl), duckdb:///file, sqlite:///file,
#                    postgresql://user@host:5432/db
#   table / query    for databases: a table name, or a SQL query (not both)
#   encoding         text files: utf-8 (with or without BOM), cp1251, latin-1, ...
#   separator        CSV field separator
#   datetime_format  strftime pattern(s) of text timestamps, tried in order; default ISO 8601
#                    (with or without T, seconds, fraction, offset); "%s" means Unix seconds
#   date_format      the same for dates
#   timezone         IANA zone of naive timestamps (results are UTC); offsets in the data win
#   columns          canonical name = source column, only where they differ
#   values           value maps per canonical column: source value = canonical value
#   password_env     postgresql only: the environment variable that holds the password
#   password_secret  postgresql only: the Prefect Secret block that holds it (not both)
#   null_values      strings that mean missing, e.g. ["?", "N/A", "-"]
#   latest_by        a change log or snapshots: per key, the row with the latest value of
#                    this column not after the as-of date is the record
#   sheet            .xlsx only: the sheet to read (default: the first)
#   preset           ready column and value maps for a tool's export: hubspot_companies,
#                    salesforce_accounts, zendesk_tickets, intercom_conversations,
#                    delighted_nps (columns and values given here override it)
# ---------------------------------------------------------------------------------------------

[sources.accounts]                      # CRM export: account_id and name are required
uri = "data/accounts.csv"
encoding = "utf-8"
separator = ","
null_values = ["?", "N/A", "-"]
date_format = "%Y-%m-%d"
[sources.accounts.columns]
account_id = "Account ID"
name = "Account Name"
csm_email = "Owner Email"
[sources.accounts.values.status]
"Customer" = "active"
"Former customer" = "churned"

[sources.orders]                        # billing in an embedded DuckDB file, via a query
uri = "duckdb:///data/billing.duckdb"
query = "select id as order_id, account_id, created_at as ordered_at, total as amount, currency, kind from invoices"

[sources.tickets]                       # helpdesk in SQLite, local times, its own priorities
uri = "sqlite:///data/helpdesk.db"
table = "tickets"
datetime_format = ["%d.%m.%Y %H:%M", "%d.%m.%Y"]
timezone = "Europe/Berlin"
[sources.tickets.values.priority]
P1 = "urgent"
P2 = "high"
P3 = "normal"
P4 = "low"

[sources.survey_responses]              # survey-tool CSV exports with their own headers
uri = "surveys/*.csv"
[sources.survey_responses.columns]
response_id = "Response ID"
account_id = "Account"
survey = "Survey Type"
score = "Score"
submitted_at = "Submitted"

[sources.usage_events]                  # product analytics: one Parquet file per month
uri = "analytics/events-*.parquet"

[sources.outcomes]                      # goals tracked in PostgreSQL
uri = "postgresql://chs_reader@db.example.com:5432/success"
table = "goal_measurements"
password_env = "CHS_OUTCOMES_PASSWORD"
# password_secret = "outcomes-db-password"   # or a Prefect Secret block instead of the variable

[sources.action_updates]                # status changes of actions: `chs actions export`, edited
uri = "action-updates.csv"

[sources.fx_rates]                      # currency, rate_to_home, valid_from: monthly rates
uri = "data/fx_rates.csv"               # applied point in time to orders and accounts.arr

[sources.acquisition_spend]             # spent_at (or period_start/period_end), amount, channel
uri = "data/marketing_spend.csv"        # gives cac and clv_to_cac in kpis.json

[sources.feedback]                      # reviews, social posts, complaints: feedback_id,
uri = "data/reviews.csv"                # account_id, channel, text, created_at (+ rating)
"""
_HELP: dict[str, str] = {
    "output.dir": "where each as-of date's files go (scores, actions, kpis, report, outbox)",
    "output.history": "all scores and KPIs of all dates: duckdb:///file or postgresql://...",
    "output.cache": "reuse each dataset's extraction while its source is unchanged (a re-run "
    "after a failure does not read the sources again); kept in <dir>/.cache",
    "output.csv_bom": "start every CSV with a UTF-8 byte-order mark, so Excel reads accents "
    "right (false: plain UTF-8)",
    "output.xlsx_max_rows": "rows per sheet of at_risk.xlsx (the CSVs have all); 0: no workbook",
    "report.recipients": "who receives the stakeholder report",
    "report.csm_digests": "send each CSM (accounts.csm_email) a digest of their accounts",
    "report.top_n": "rows in each list of the report",
    "email.attach_max_bytes": "CSVs are attached up to this total size; larger ones are "
    "written to <dir>/<date>/attachments/ and the e-mail says where",
    "report.base_url": "where the output folder is served: e-mails link the account pages "
    "there (default: the published files, file://)",
    "validation.max_invalid_share": "above this share of invalid rows a dataset stops the run",
    "validation.gx_max_rows": "larger datasets run their suite translated into Polars",
    "windows.usage_days": "days of product usage behind usage and engagement measures",
    "windows.kpi_days": "the period of churn, retention and revenue-retention KPIs",
    "scoring.min_coverage": "accounts with less of the weight covered by data get no score",
    "scoring.drop_alert": "points lost in a week that raise a drop alert",
    "scoring.top_drivers": "measures listed as the drivers of each score",
    "kpis.gross_margin": "for CLV = ARPA x margin / churn",
    "kpis.clv_method": "subscription, or bgnbd for repeat-purchase businesses",
    "currency.home": "ISO 4217 code every amount, ARR and KPI is converted to (fx_rates)",
    "rollup.method": "parent score from its children: arr_weighted, worst_child or mean",
    "calibration.method": "p_churn_90d from the score: platt (logistic) or isotonic (steps)",
    "schedule.cron": "when `chs serve` runs the weekly flow",
    "alerts.recipients": "who hears about a failed run",
}
_SCORING_NOTES = """\
# Per-tier models: a tier (accounts.tier) may have its own dimension weights and measure changes.
# [scoring.tiers.enterprise]
# dimensions = { usage = 0.2, engagement = 0.1, financial = 0.2, support = 0.2, outcomes = 0.1, satisfaction = 0.2 }
# measures = [{ name = "tickets_per_seat_90d", bands = [0, 0.02, 0.1, 0.3] }]
#
# CSMs' manual overrides: a CSV with account_id, score and/or segment, reason, expires, author.
# [scoring.overrides]
# uri = "overrides.csv"
"""
_MEASURES_NOTE = """\
# The measures of the model (the defaults). Each reads a feature, feeds a dimension and is
# normalised to 0-100 by one method:
#   method = "bands"      bands = [red_low, yellow_from, green_from, green_high]
#   method = "minmax"     min = 0, max = 10 (clipped)
#   method = "percentile" peer_group = "tier" (rank within accounts sharing the column)
#   method = "target"     target = 100 (value / target x 100, capped at 100)
#   points = { gold = 100, silver = 60 }   a categorical account attribute
# direction = "higher" or "lower" (is better); weight within the dimension (default 1);
# feature = the feature or account column to read (default: the measure's name).
# With [kpis] clv_method = "bgnbd" the default model adds two purchase measures: delete these
# tables to get them, or add them here.
"""
_ACTIONS_NOTE = """\
# Playbooks: when every condition holds, the action is recommended. Conditions compare a
# score, segment, measure or account column: a value, or { eq, ne, lt, lte, gt, gte, in,
# not_in, is_null }. The reason may name columns in {braces} with a format.
# owner = "csm" (the account's CSM) or an e-mail address; priority = low, medium, high, urgent.
"""

_DELIVERY_NOTES = """\
# Chat (README: Slack, Teams and the CRM). The webhook URL is a secret: it is read from the
# environment variable (or a Prefect Secret block, webhook_secret = "name"), never the config.
# [notify.slack]
# webhook_env = "CHS_SLACK_WEBHOOK_URL"
# [notify.teams]
# webhook_env = "CHS_TEAMS_WEBHOOK_URL"
#
# CRM write-back: `chs writeback` (dry run) / `chs writeback --apply`; the weekly run applies
# it when apply = true. target = "hubspot", "salesforce" or a postgresql:// URL.
# [writeback]
# target = "hubspot"
# fields = ["score", "segment", "top_driver", "p_churn_90d", "as_of"]
# apply = false
# token_env = "CHS_CRM_TOKEN"          # or token_secret = "block-name"
# base_url = "https://api.hubapi.com"  # Salesforce: your instance, https://NAME.my.salesforce.com
# api_version = "v62.0"                # Salesforce REST API version
# table = "chs_account_health"         # the database target's table
# [writeback.properties]               # field -> the CRM's property (defaults in the README)
# score = "chs_health_score"
"""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:_}" if isinstance(value, int) and abs(value) >= 10_000 else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _line(key: str, value: Any, help_text: str = "") -> str:
    text = f"{_key(key)} = {_toml(value)}"
    return f"{text:<39} # {help_text}" if help_text else text


def _fields(model: BaseModel, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return a model's plain fields with their defaults (nested models have their own table)."""
    values = {k: getattr(model, k) for k in type(model).model_fields if k not in skip}
    return {k: v for k, v in values.items() if not isinstance(v, BaseModel)}


def _table(header: str, values: dict[str, Any]) -> list[str]:
    lines = [f"[{header}]"]
    lines += [
        _line(k, v, _HELP.get(f"{header}.{k}", "")) for k, v in values.items() if v is not None
    ]
    return [*lines, ""]


def _measures() -> list[str]:
    lines = [_MEASURES_NOTE]
    for m in default_measures():
        lines.append("[[scoring.measures]]")
        lines += [_line(k, v) for k, v in m.items()]
        lines.append("")
    return lines


def _actions() -> list[str]:
    lines = [_ACTIONS_NOTE]
    lines += ["# the lifecycle of actions (README: Actions with a lifecycle)"]
    lines += _table("actions", _fields(PlaybookSettings.model_validate({})))
    for a in default_actions():
        lines.append("[[actions.playbooks]]")
        lines += [_line(k, v) for k, v in {**a, "owner": a.get("owner", "csm")}.items()]
        lines.append("")
    return lines


_TEXT_NOTE = """\
# text: sentiment, language and themes of feedback, survey comments and ticket subject and
# description (README: Voice of the customer). Runs with a feedback source, or enabled = true;
# enabled = false turns it off. themes replaces the built-in lexicon: { pricing = ["price*"] }.
# A config without [[scoring.measures]] and [[actions.playbooks]] then gets the text measures
# and playbook below as defaults; this file writes its measures out, so uncomment them here."""


def _text() -> list[str]:
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in _fields(TextConfig()).items()}
    lines = [_TEXT_NOTE, *_table("text", values)[:-1], "# enabled = true", ""]
    for m in [x for x in default_measures(text=True) if x not in default_measures()]:
        lines += ["# [[scoring.measures]]", *[f"# {_line(k, v)}" for k, v in m.items()], "#"]
    for a in [x for x in default_actions(text=True) if x not in default_actions()]:
        lines += ["# [[actions.playbooks]]", *[f"# {_line(k, v)}" for k, v in a.items()], "#"]
    return [*lines, ""]


def starter_config() -> str:
    """Return the text of the starter config."""
    scoring = ScoringConfig.model_validate({})
    lines = [_HEADER, _SOURCES]
    lines += _table("output", _fields(OutputConfig.model_validate({})))
    lines += _table("report", _fields(ReportConfig.model_validate({})))
    lines += _table("email", _fields(EmailConfig.model_validate({})))
    lines += _table("validation", _fields(ValidationConfig.model_validate({})))
    lines += ["# windows: days of history behind each kind of measure, ending on the as-of date"]
    lines += _table("windows", _fields(WindowsConfig.model_validate({})))
    lines += [
        "# survey scales (min, max and direction); CES is often asked as 1-7, higher = easier"
    ]
    for survey, (lo, hi) in DEFAULT_SCALES.items():
        lines += _table(f"surveys.{survey}", _fields(SurveyScale(min=lo, max=hi)))
    lines += _table("scoring", _fields(scoring, skip=("dimensions", "measures", "tiers")))
    lines += ["# dimension weights (re-weighted over the dimensions that have data)"]
    lines += _table("scoring.dimensions", scoring.dimensions)
    lines += ["# segments: score >= healthy is healthy, score < at_risk is at risk"]
    lines += _table("scoring.segments", _fields(SegmentsConfig.model_validate({})))
    lines += [_SCORING_NOTES, *_measures(), *_actions()]
    lines += _table("kpis", _fields(KpiConfig.model_validate({})))
    lines += _table("schedule", _fields(ScheduleConfig.model_validate({})))
    lines += _table("alerts", _fields(AlertsConfig.model_validate({})))
    lines += _table("currency", _fields(CurrencyConfig.model_validate({})))
    lines += _table("rollup", _fields(RollupConfig.model_validate({})))
    lines += _table("calibration", _fields(CalibrationConfig.model_validate({})))
    lines += _text()
    lines += [_DELIVERY_NOTES]
    return "\n".join(lines).rstrip() + "\n"


def write_starter_config(path: Path, force: bool = False) -> Path:
    """Write the starter config to ``path`` (a .toml file, or a folder to hold chs.toml)."""
    target = path if path.suffix == ".toml" else path / "chs.toml"
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; pass --force to overwrite it.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(starter_config(), encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"Cannot write {target}: {err.strerror or err}.") from None
    return target
