"""Ready column and value maps for the standard exports of common tools (``preset = "..."``).

A preset fills in a source's ``columns``, ``values`` and time formats; what the source's own
config gives wins (``columns`` by canonical name, ``values`` by raw value). A column a preset maps
but the file lacks is skipped unless the dataset requires it, so an export with fewer columns
still reads. The headers each preset expects are listed in the README ("Bringing your data").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.config import SourceConfig


@dataclass(frozen=True)
class Preset:
    """One tool's export: the dataset it feeds and how its headers map onto canonical columns."""

    dataset: str
    columns: dict[str, str]  # canonical name = header in the export
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    datetime_format: list[str] | None = None  # None: ISO 8601, with or without an offset
    headers: tuple[str, ...] = ()  # the export's headers, in its order (documentation, tests)


PRESETS: dict[str, Preset] = {
    # HubSpot CRM > Companies > Export (CSV): one row per company, headers are property labels
    "hubspot_companies": Preset(
        dataset="accounts",
        columns={
            "account_id": "Record ID",
            "name": "Company name",
            "industry": "Industry",
            "region": "Country/Region",
        },
        headers=(
            "Record ID",
            "Company name",
            "Company owner",
            "Create Date",
            "Last Activity Date",
            "Company Domain Name",
            "Industry",
            "Country/Region",
            "Lifecycle Stage",
        ),
    ),
    # Salesforce Data Loader / Data Export of the Account object: headers are API field names
    "salesforce_accounts": Preset(
        dataset="accounts",
        columns={
            "account_id": "Id",
            "name": "Name",
            "industry": "Industry",
            "region": "BillingCountry",
        },
        headers=(
            "Id",
            "IsDeleted",
            "Name",
            "Type",
            "ParentId",
            "BillingCity",
            "BillingState",
            "BillingCountry",
            "Industry",
            "AnnualRevenue",
            "NumberOfEmployees",
            "OwnerId",
            "CreatedDate",
        ),
    ),
    # Zendesk Admin Center > Reports > Export > CSV: one row per ticket as it is now
    "zendesk_tickets": Preset(
        dataset="tickets",
        columns={
            "ticket_id": "Id",
            "account_id": "Organization",
            "opened_at": "Created at",
            "resolved_at": "Solved at",
            "priority": "Priority",
            "status": "Status",
        },
        headers=(
            "Summation column",
            "Id",
            "Requester",
            "Requester id",
            "Requester external id",
            "Requester email",
            "Requester domain",
            "Submitter",
            "Assignee",
            "Group",
            "Subject",
            "Tags",
            "Status",
            "Priority",
            "Via",
            "Ticket type",
            "Created at",
            "Updated at",
            "Assigned at",
            "Organization",
            "Due date",
            "Initially assigned at",
            "Solved at",
            "Resolution time",
            "Satisfaction Score",
        ),
    ),
    # Intercom conversation export, one row per conversation (times in UTC, "2017-11-14 21:45:08")
    "intercom_conversations": Preset(
        dataset="tickets",
        columns={
            "ticket_id": "conversation_id",
            "account_id": "message_author_companies",
            "opened_at": "conversation_created_at",
            "resolved_at": "conversation_closed_at",
            "status": "conversation_state",
        },
        headers=(
            "message_id",
            "message_type",
            "message_created_at",
            "message_author_type",
            "message_author_email",
            "message_author_companies",
            "conversation_tags",
            "conversation_id",
            "conversation_state",
            "conversation_created_at",
            "conversation_first_response_at",
            "conversation_closed_at",
        ),
    ),
    # Delighted survey responses (the fields of its responses export): Unix-second timestamps;
    # the account is a person property of your own, so map account_id to that column
    "delighted_nps": Preset(
        dataset="survey_responses",
        columns={
            "response_id": "id",
            "respondent_id": "person",
            "survey": "survey_type",
            "score": "score",
            "comment": "comment",
            "submitted_at": "created_at",
        },
        datetime_format=["%s"],
        headers=("id", "person", "survey_type", "score", "comment", "permalink", "created_at"),
    ),
}


def apply_preset(src: SourceConfig) -> SourceConfig:
    """Fill the source's maps from its preset; the source's own settings win."""
    preset = PRESETS[src.preset or ""]
    src.columns = {**preset.columns, **src.columns}
    merged = {c: dict(m) for c, m in preset.values.items()}
    for c, m in src.values.items():
        merged[c] = {**merged.get(c, {}), **m}
    src.values = merged
    if src.datetime_format is None and preset.datetime_format:
        src.datetime_format = list(preset.datetime_format)
    return src


def optional_preset_columns(src: SourceConfig) -> set[str]:
    """Return the source columns the preset maps (a file may lack them)."""
    if not src.preset:
        return set()
    preset = PRESETS[src.preset]
    return {s for c, s in src.columns.items() if preset.columns.get(c) == s}
