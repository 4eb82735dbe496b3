"""The canonical datasets (SPEC section 3), declared once.

Readers cast to these schemas, the demo generator and the tests build data from them, and a
test checks that the Great Expectations suites in ``expectations/`` name the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

TS = pl.Datetime("us")


def _schema(columns: dict[str, Any]) -> pl.Schema:
    """Build a schema (typed loosely: Polars' stubs reject a dict mixing classes and instances)."""
    return pl.Schema(columns)


@dataclass(frozen=True)
class Dataset:
    """One canonical dataset: its schema, which columns are required, and its keys."""

    name: str
    schema: pl.Schema
    required: tuple[str, ...]
    key: str | None  # the unique id column, if the dataset has one
    time_column: str | None  # the column that places a row in time (point-in-time filter)
    value_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def optional(self) -> tuple[str, ...]:
        """The dataset's columns that are not required."""
        return tuple(c for c in self.schema.names() if c not in self.required)


ACCOUNTS = Dataset(
    name="accounts",
    schema=_schema(
        {
            "account_id": pl.String,
            "name": pl.String,
            "csm_email": pl.String,
            "tier": pl.String,
            "industry": pl.String,
            "region": pl.String,
            "seats": pl.Int64,
            "arr": pl.Float64,
            "contract_start": pl.Date,
            "renewal_date": pl.Date,
            "status": pl.String,
            "churned_at": pl.Date,
            "parent_account_id": pl.String,  # the account it rolls up to (scores_rollup.*)
            "currency": pl.String,  # ISO 4217 of arr; converted to [currency] home
            "crm_id": pl.String,  # the record id in the CRM written back to (default account_id)
            "slack_user_id": pl.String,  # the CSM's Slack member id, mentioned in chat alerts
        }
    ),
    required=("account_id", "name"),
    key="account_id",
    time_column=None,
    value_sets={"status": ("active", "churned")},
)

ORDERS = Dataset(
    name="orders",
    schema=_schema(
        {
            "order_id": pl.String,
            "account_id": pl.String,
            "ordered_at": TS,
            "amount": pl.Float64,
            "currency": pl.String,
            "kind": pl.String,
            "cost": pl.Float64,  # what the order cost to serve: profit = amount - cost
        }
    ),
    required=("order_id", "account_id", "ordered_at", "amount"),
    key="order_id",
    time_column="ordered_at",
    value_sets={"kind": ("order", "refund")},
)

TICKETS = Dataset(
    name="tickets",
    schema=_schema(
        {
            "ticket_id": pl.String,
            "account_id": pl.String,
            "opened_at": TS,
            "resolved_at": TS,
            "priority": pl.String,
            "status": pl.String,
            "satisfaction": pl.Float64,
            # text and kind (issue 22): the subject and description are read for sentiment and
            # themes; [text] complaint_values says which type/category values are complaints
            "subject": pl.String,
            "description": pl.String,
            "type": pl.String,
            "category": pl.String,
        }
    ),
    required=("ticket_id", "account_id", "opened_at"),
    key="ticket_id",
    time_column="opened_at",
    value_sets={"priority": ("low", "normal", "high", "urgent")},
)

SURVEY_RESPONSES = Dataset(
    name="survey_responses",
    schema=_schema(
        {
            "response_id": pl.String,
            "account_id": pl.String,
            "survey": pl.String,
            "score": pl.Float64,
            "submitted_at": TS,
            "respondent_id": pl.String,
            "comment": pl.String,
        }
    ),
    required=("response_id", "account_id", "survey", "score", "submitted_at"),
    key="response_id",
    time_column="submitted_at",
    value_sets={"survey": ("nps", "csat", "ces")},
)

USAGE_EVENTS = Dataset(
    name="usage_events",
    schema=_schema(
        {
            "account_id": pl.String,
            "user_id": pl.String,
            "event": pl.String,
            "ts": TS,
        }
    ),
    required=("account_id", "user_id", "event", "ts"),
    key=None,
    time_column="ts",
)

OUTCOMES = Dataset(
    name="outcomes",
    schema=_schema(
        {
            "account_id": pl.String,
            "goal": pl.String,
            "target": pl.Float64,
            "actual": pl.Float64,
            "measured_at": TS,
        }
    ),
    required=("account_id", "goal", "target", "actual", "measured_at"),
    key=None,
    time_column="measured_at",
)

# Status changes of actions (SPEC 10.1), e.g. a CSV the CSMs edit (``chs actions export``).
# The statuses a person may set; expired, deferred and holdout are the pipeline's own.
MANUAL_STATUSES: tuple[str, ...] = ("open", "in_progress", "done", "dismissed", "snoozed")
ACTION_UPDATES = Dataset(
    name="action_updates",
    schema=_schema(
        {
            "action_id": pl.String,
            "status": pl.String,
            "updated_at": TS,
            "author": pl.String,
            "note": pl.String,
            "snooze_until": pl.Date,
        }
    ),
    required=("action_id", "status", "updated_at"),
    key=None,  # an action may change status many times
    time_column="updated_at",
    value_sets={"status": MANUAL_STATUSES},
)

FX_RATES = Dataset(
    name="fx_rates",
    schema=_schema({"currency": pl.String, "rate_to_home": pl.Float64, "valid_from": pl.Date}),
    required=("currency", "rate_to_home", "valid_from"),
    key=None,
    time_column="valid_from",
)

ACQUISITION_SPEND = Dataset(
    name="acquisition_spend",
    schema=_schema(
        {
            "spent_at": pl.Date,
            "period_start": pl.Date,
            "period_end": pl.Date,
            "amount": pl.Float64,
            "currency": pl.String,
            "channel": pl.String,
        }
    ),
    required=("amount",),
    key=None,
    time_column=None,  # a row is a day (spent_at) or a period; the KPI window places it
)

# Voice of the customer (SPEC 10.4): reviews, social posts, complaints, e-mails, chats.
FEEDBACK_CHANNELS: tuple[str, ...] = ("review", "social", "complaint", "email", "chat", "other")
FEEDBACK = Dataset(
    name="feedback",
    schema=_schema(
        {
            "feedback_id": pl.String,
            "account_id": pl.String,
            "channel": pl.String,
            "text": pl.String,
            "created_at": TS,
            "rating": pl.Float64,  # on [text] rating_scale
            "author": pl.String,
            "url": pl.String,
        }
    ),
    required=("feedback_id", "account_id", "channel", "text", "created_at"),
    key="feedback_id",
    time_column="created_at",
    value_sets={"channel": FEEDBACK_CHANNELS},
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        ACCOUNTS,
        ORDERS,
        TICKETS,
        SURVEY_RESPONSES,
        USAGE_EVENTS,
        OUTCOMES,
        FX_RATES,
        ACQUISITION_SPEND,
        ACTION_UPDATES,
        FEEDBACK,
    )
}

# Survey scales (SPEC section 3); the config may change them.
DEFAULT_SCALES: dict[str, tuple[float, float]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

# Columns every scores.* file carries (SPEC section 6); other tools rely on these.
DIMENSIONS: tuple[str, ...] = (
    "usage",
    "engagement",
    "financial",
    "support",
    "outcomes",
    "satisfaction",
)
SEGMENTS: tuple[str, ...] = ("healthy", "neutral", "at_risk")
ACTION_COLUMNS: tuple[str, ...] = (
    "account_id",
    "as_of",
    "action",
    "reason",
    "owner",
    "priority",
    "due_date",
)
# actions.csv: the columns above, then the lifecycle's (SPEC 10.1)
LIFECYCLE_COLUMNS: tuple[str, ...] = ("action_id", "status", "opened_on", "weeks_open", "overdue")
ACTIONS_CSV_COLUMNS: tuple[str, ...] = (*ACTION_COLUMNS, *LIFECYCLE_COLUMNS)


def empty_frame(dataset: str) -> pl.DataFrame:
    """Return an empty frame with the canonical schema of ``dataset``."""
    return pl.DataFrame(schema=DATASETS[dataset].schema)
