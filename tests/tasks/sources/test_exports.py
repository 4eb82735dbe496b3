"""Messy real exports: null markers, change logs (latest_by), .xlsx workbooks and tool presets."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path
from statistics import mean, median
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import polars as pl
import pytest
import xlsxwriter
from polars.testing import assert_frame_equal

from tasks.backfill import SpanWindow, as_of_slice
from tasks.config import Config, parse_config
from tasks.errors import ConfigError, SourceError
from tasks.kpis import resolution_kpis
from tasks.sources.databases import adbc_uri
from tasks.sources.latest import LATEST
from tasks.sources.plan import REASON, Window
from tasks.sources.presets import PRESETS
from tasks.sources.read import extract_dataset
from tasks.validate import ValidatedDataset, validate_dataset

AS_OF = date(2026, 2, 10)
RUN_TIME = datetime(2026, 2, 13, 12)
ACCOUNTS = ["a", "b"]

# A helpdesk event log: one row per update of a ticket, "?" / "N/A" / "-" for missing values,
# day-first dates and priority labels of the helpdesk's own scale.
EVENT_LOG = """\
Ticket,Account,Opened,Resolved,Priority,Updated,Status
T1,a,31/01/2026 14:05,?,3 - Normal,31/01/2026 14:05,open
T1,a,31/01/2026 14:05,?,2 - High,01/02/2026 09:00,open
T1,a,31/01/2026 14:05,02/02/2026 10:05,2 - High,02/02/2026 10:05,solved
T2,a,03/02/2026 08:00,03/02/2026 12:00,1 - Urgent,03/02/2026 12:00,solved
T2,a,03/02/2026 08:00,?,1 - Urgent,04/02/2026 09:00,open
T3,b,05/02/2026 10:00,?,N/A,05/02/2026 10:00,open
T3,b,05/02/2026 10:00,06/02/2026 16:30,4 - Low,06/02/2026 16:30,solved
T3,b,05/02/2026 10:00,06/02/2026 16:30,4 - Low,12/02/2026 09:00,closed
T4,b,07/02/2026 11:00,07/02/2026 12:00,-,07/02/2026 12:00,solved
T5,zz,07/02/2026 11:00,?,2 - High,07/02/2026 11:00,open
T6,a,32/01/2026 10:00,?,2 - High,08/02/2026 10:00,open
"""
DAY_FIRST = "%d/%m/%Y %H:%M"
EVENT_LOG_SOURCE: dict[str, Any] = {
    "uri": "tickets.csv",
    "null_values": ["?", "N/A", "-"],
    "latest_by": "Updated",
    "datetime_format": DAY_FIRST,
    "columns": {
        "ticket_id": "Ticket",
        "account_id": "Account",
        "opened_at": "Opened",
        "resolved_at": "Resolved",
        "priority": "Priority",
        "status": "Status",
    },
    "values": {
        "priority": {"1 - Urgent": "urgent", "2 - High": "high", "3 - Normal": "normal"}
        | {"4 - Low": "low"}
    },
}


def _cfg(tmp: Path, dataset: str, **src: Any) -> Config:
    sources: dict[str, Any] = {"accounts": {"uri": "accounts.csv"}, dataset: src}
    return parse_config({"sources": sources}, tmp)


def _validated(cfg: Config, dataset: str, window: Window) -> ValidatedDataset:
    df = extract_dataset(dataset, cfg, window)
    return validate_dataset(df, dataset, cfg, RUN_TIME, account_ids=ACCOUNTS)


def _direct_records(text: str, as_of: date) -> dict[str, dict[str, str]]:
    """Each ticket's latest update not after the as-of date, computed without the pipeline."""
    latest: dict[str, dict[str, str]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        updated = datetime.strptime(row["Updated"], DAY_FIRST)
        if updated.date() > as_of:
            continue
        best = latest.get(row["Ticket"])
        if best is None or updated > datetime.strptime(best["Updated"], DAY_FIRST):
            latest[row["Ticket"]] = row
    return latest


def test_event_log_reconciles_and_gives_the_direct_resolution_kpis(tmp_path: Path) -> None:
    (tmp_path / "tickets.csv").write_text(EVENT_LOG)
    cfg = _cfg(tmp_path, "tickets", **EVENT_LOG_SOURCE)
    v = _validated(cfg, "tickets", Window(AS_OF, RUN_TIME))
    s = v.summary()
    # 11 rows, of which T3's update of 12/02 comes after the as-of date: 10 are read. T5 (an
    # unknown account) and T6 (31 days in January are not 32) are quarantined; T1-T4 are the
    # records, and the 4 earlier updates of T1 (2), T2 (1) and T3 (1) are valid history.
    assert (s["rows_read"], s["rows_accepted"], s["rows_quarantined"]) == (10, 8, 2)
    assert s["rows_superseded"] == 4
    assert s["rows_read"] == s["rows_accepted"] + s["rows_quarantined"]
    assert sorted(v.quarantined["ticket_id"]) == ["T5", "T6"]
    assert "opened_at: '32/01/2026 10:00' is not a date-time" in v.quarantined["reason"][1]

    records = v.accepted.sort("ticket_id")
    assert records["ticket_id"].to_list() == ["T1", "T2", "T3", "T4"]
    # T2 was reopened after it was solved: as of the date it is open; T4's "-" is no priority
    assert records["resolved_at"].to_list() == [
        datetime(2026, 2, 2, 10, 5),
        None,
        datetime(2026, 2, 6, 16, 30),
        datetime(2026, 2, 7, 12),
    ]
    assert records["priority"].to_list() == ["high", "urgent", "low", None]

    direct = _direct_records(EVENT_LOG, AS_OF)
    hours = [
        (
            datetime.strptime(r["Resolved"], DAY_FIRST) - datetime.strptime(r["Opened"], DAY_FIRST)
        ).total_seconds()
        / 3600
        for t, r in direct.items()
        if t in ("T1", "T2", "T3", "T4") and r["Resolved"] != "?"
    ]
    assert sorted(hours) == [1.0, 30.5, 44.0]  # T4, T3, T1
    kpis = resolution_kpis(v.accepted, AS_OF, cfg.windows.kpi_days)
    assert kpis["avg_resolution_hours"] == round(mean(hours), 2)
    assert kpis["median_resolution_hours"] == median(hours)
    assert kpis["resolved_tickets_n"] == 3


def test_backfill_picks_each_dates_record(tmp_path: Path) -> None:
    (tmp_path / "tickets.csv").write_text(EVENT_LOG)
    cfg = _cfg(tmp_path, "tickets", **EVENT_LOG_SOURCE)
    span = extract_dataset(
        "tickets", cfg, SpanWindow(date(2026, 2, 12), RUN_TIME, date(2026, 2, 3))
    )
    whole = validate_dataset(span, "tickets", cfg, RUN_TIME, account_ids=ACCOUNTS)
    # as of 12/02, T3's closing update is its record
    assert whole.accepted.filter(pl.col("ticket_id") == "T3")["status"].item() == "closed"
    for day in (date(2026, 2, 3), AS_OF, date(2026, 2, 12)):
        sliced = as_of_slice({"tickets": whole}, day, RUN_TIME, cfg)["tickets"]
        alone = _validated(cfg, "tickets", Window(day, RUN_TIME))
        assert sliced.summary() == alone.summary(), day
        assert_frame_equal(sliced.accepted.sort("ticket_id"), alone.accepted.sort("ticket_id"))
    early = as_of_slice({"tickets": whole}, date(2026, 2, 3), RUN_TIME, cfg)["tickets"]
    # on 03/02 T2 was solved (its reopening came the next day); T3 and T4 did not exist yet
    t2 = early.accepted.filter(pl.col("ticket_id") == "T2")
    assert t2["resolved_at"].item() == datetime(2026, 2, 3, 12)
    assert sorted(early.accepted["ticket_id"]) == ["T1", "T2"]


def test_two_rows_of_one_version_are_duplicates(tmp_path: Path) -> None:
    (tmp_path / "tickets.csv").write_text(
        "Ticket,Account,Opened,Updated\n"
        "T1,a,01/02/2026 10:00,01/02/2026 10:00\n"
        "T1,a,01/02/2026 10:00,01/02/2026 10:00\n"
        "T2,a,01/02/2026 10:00,?\n"
    )
    src = {k: v for k, v in EVENT_LOG_SOURCE.items() if k != "values"}
    src["columns"] = {"ticket_id": "Ticket", "account_id": "Account", "opened_at": "Opened"}
    v = _validated(_cfg(tmp_path, "tickets", **src), "tickets", Window(AS_OF, RUN_TIME))
    # T1's two rows share one update time: neither can be the record. T2 has no update time
    # at all and is its own record.
    assert sorted(v.quarantined["ticket_id"]) == ["T1", "T1"]
    assert v.accepted["ticket_id"].to_list() == ["T2"]
    assert v.summary()["rows_superseded"] == 0


def test_latest_by_errors_are_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "tickets.csv").write_text("ticket_id,account_id,opened_at\nT1,a,2026-02-01\n")
    cfg = _cfg(tmp_path, "tickets", uri="tickets.csv", latest_by="Updated")
    with pytest.raises(SourceError, match="has no column 'Updated' \\(named by latest_by\\)"):
        extract_dataset("tickets", cfg, Window(AS_OF, RUN_TIME))
    with pytest.raises(ConfigError, match="latest_by needs a dataset with a unique key"):
        _cfg(tmp_path, "usage_events", uri="e.csv", latest_by="ts")


def test_snapshots_of_accounts_keep_the_latest(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text(
        "account_id,name,tier,snapshot\n"
        "a,Acme,basic,2026-01-01\n"
        "a,Acme Corp,gold,2026-02-01\n"
        "a,Acme Corp,platinum,2026-03-01\n"
    )
    cfg = parse_config(
        {"sources": {"accounts": {"uri": "accounts.csv", "latest_by": "snapshot"}}}, tmp_path
    )
    v = validate_dataset(
        extract_dataset("accounts", cfg, Window(AS_OF, RUN_TIME)), "accounts", cfg, RUN_TIME
    )
    # the March snapshot does not exist yet on 10/02; January's is superseded by February's
    assert v.accepted.select("account_id", "name", "tier").rows() == [("a", "Acme Corp", "gold")]
    assert "snapshot" not in v.accepted.columns  # not a custom attribute: it is the version
    assert v.accepted[LATEST].to_list() == [datetime(2026, 2, 1)]
    assert v.summary()["rows_superseded"] == 1


def test_null_values_read_as_missing(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "order_id,account_id,ordered_at,amount,kind\n"
        "O1,a,2026-02-01,N/A,order\n"
        "O2,a,?,10, - \n"
        "O3,a,2026-02-02,abc,order\n"
    )
    cfg = _cfg(tmp_path, "orders", uri="orders.csv", null_values=["?", "N/A", "-"])
    df = extract_dataset("orders", cfg, Window(AS_OF, RUN_TIME))
    # a marker is missing, not a cast failure; text that is no marker still fails the cast
    assert df["amount"].to_list() == [None, 10.0, None]
    assert df["ordered_at"].to_list() == [datetime(2026, 2, 1), None, datetime(2026, 2, 2)]
    assert df["kind"].to_list() == ["order", None, "order"]
    assert df[REASON].to_list() == [None, None, "amount: 'abc' is not a number"]


def _workbook(path: Path) -> None:
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet("Read me").write(0, 0, "exported by the CRM")
    ws = wb.add_worksheet("Accounts")
    ws.write_row(0, 0, ["Id", "Name", "Seats", "Renewal"])
    ws.write_row(1, 0, ["A1", "Acme", 12])
    ws.write_datetime(1, 3, datetime(2026, 6, 30), wb.add_format({"num_format": "dd/mm/yyyy"}))
    ws.write_row(2, 0, ["A2", "Beta", "?", "?"])
    wb.close()


def test_xlsx_sheet_reads(tmp_path: Path) -> None:
    _workbook(tmp_path / "crm.xlsx")
    src = {
        "uri": "crm.xlsx",
        "sheet": "Accounts",
        "null_values": ["?"],
        "columns": {
            "account_id": "Id",
            "name": "Name",
            "seats": "Seats",
            "renewal_date": "Renewal",
        },
    }
    cfg = parse_config({"sources": {"accounts": src}}, tmp_path)
    df = extract_dataset("accounts", cfg, Window(AS_OF, RUN_TIME))
    # a date cell is a date whatever its display format; numbers keep their value
    assert df.select("account_id", "name", "seats", "renewal_date").rows() == [
        ("A1", "Acme", 12, date(2026, 6, 30)),
        ("A2", "Beta", None, None),
    ]
    assert df[REASON].to_list() == [None, None]


def test_xlsx_first_sheet_by_default_and_a_missing_sheet(tmp_path: Path) -> None:
    _workbook(tmp_path / "crm.xlsx")
    cfg = parse_config({"sources": {"accounts": {"uri": "crm.xlsx"}}}, tmp_path)
    # the first sheet is the read-me, which has no account_id column
    with pytest.raises(SourceError, match="has no column 'account_id'"):
        extract_dataset("accounts", cfg, Window(AS_OF, RUN_TIME))
    cfg = parse_config({"sources": {"accounts": {"uri": "crm.xlsx", "sheet": "Deals"}}}, tmp_path)
    with pytest.raises(SourceError, match="has no sheet 'Deals'; its sheets are Read me, Accounts"):
        extract_dataset("accounts", cfg, Window(AS_OF, RUN_TIME))


# one row per preset, in the export's own headers; values where the canonical column needs one
PRESET_ROWS: dict[str, dict[str, str]] = {
    "hubspot_companies": {
        "Record ID": "9001",
        "Company name": "Acme Inc",
        "Create Date": "2024-02-01 09:30",
        "Industry": "Software",
        "Country/Region": "Germany",
    },
    "salesforce_accounts": {
        "Id": "001A000001",
        "Name": "Acme Inc",
        "IsDeleted": "false",
        "Industry": "Software",
        "BillingCountry": "Germany",
    },
    "zendesk_tickets": {
        "Id": "101",
        "Organization": "a",
        "Status": "solved",
        "Priority": "High",
        "Created at": "2026-02-01 10:00:00",
        "Solved at": "2026-02-01 12:30:00",
    },
    "intercom_conversations": {
        "conversation_id": "c-1",
        "message_author_companies": "a",
        "conversation_state": "closed",
        "conversation_created_at": "2026-02-01 10:00:00",
        "conversation_closed_at": "2026-02-01 11:00:00",
    },
    "delighted_nps": {
        "id": "r-1",
        "person": "p-1",
        "survey_type": "nps",
        "score": "9",
        "comment": "Great",
        "created_at": "1769940000",  # 2026-02-01 10:00 UTC
    },
}
# what each preset's row reads as, in canonical columns
PRESET_EXPECTED: dict[str, dict[str, Any]] = {
    "hubspot_companies": {"account_id": "9001", "name": "Acme Inc", "region": "Germany"},
    "salesforce_accounts": {"account_id": "001A000001", "industry": "Software"},
    "zendesk_tickets": {
        "ticket_id": "101",
        "priority": "high",
        "resolved_at": datetime(2026, 2, 1, 12, 30),
    },
    "intercom_conversations": {"ticket_id": "c-1", "opened_at": datetime(2026, 2, 1, 10)},
    "delighted_nps": {"response_id": "r-1", "score": 9.0, "submitted_at": datetime(2026, 2, 1, 10)},
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_reads_its_documented_headers(tmp_path: Path, name: str) -> None:
    preset = PRESETS[name]
    row = PRESET_ROWS[name]
    assert set(row) <= set(preset.headers)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(preset.headers))
    writer.writeheader()
    writer.writerow(row)
    (tmp_path / "export.csv").write_text(out.getvalue())
    src: dict[str, Any] = {"uri": "export.csv", "preset": name}
    if name == "delighted_nps":  # the account is a person property of the user's own
        src["columns"] = {"account_id": "person"}
    if preset.dataset == "accounts":
        cfg = parse_config({"sources": {"accounts": src}}, tmp_path)
    else:
        cfg = _cfg(tmp_path, preset.dataset, **src)
    df = extract_dataset(preset.dataset, cfg, Window(AS_OF, RUN_TIME))
    got = df.row(0, named=True)
    assert got[REASON] is None
    assert {k: got[k] for k in PRESET_EXPECTED[name]} == PRESET_EXPECTED[name]


def test_explicit_columns_and_values_override_a_preset(tmp_path: Path) -> None:
    headers = PRESETS["zendesk_tickets"].headers
    row = dict.fromkeys(headers, "") | PRESET_ROWS["zendesk_tickets"]
    row |= {"Requester external id": "b", "Priority": "P1"}
    (tmp_path / "export.csv").write_text(",".join(headers) + "\n" + ",".join(row.values()) + "\n")
    cfg = _cfg(
        tmp_path,
        "tickets",
        uri="export.csv",
        preset="zendesk_tickets",
        columns={"account_id": "Requester external id"},
        values={"priority": {"P1": "urgent"}},
    )
    df = extract_dataset("tickets", cfg, Window(AS_OF, RUN_TIME))
    assert df.select("account_id", "priority").rows() == [("b", "urgent")]


def test_preset_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'jira'; expected one of hubspot"):
        _cfg(tmp_path, "tickets", uri="t.csv", preset="jira")
    with pytest.raises(ConfigError, match="preset 'zendesk_tickets' is for the tickets source"):
        _cfg(tmp_path, "orders", uri="t.csv", preset="zendesk_tickets")


def test_adbc_uri_carries_the_settings_and_an_encoded_password() -> None:
    uri = adbc_uri(
        "postgresql://cs@db.example:5432/crm?sslmode=require&application_name=x", "p@ss w&rd"
    )
    q = dict(parse_qsl(urlsplit(uri).query))
    # the source's own settings stay; the reader's replace same-named ones; the password
    # survives characters that mean something in a URL
    assert q == {
        "sslmode": "require",
        "application_name": "chs",
        "connect_timeout": "10",
        "options": "-c default_transaction_read_only=on",
        "password": "p@ss w&rd",
    }
    assert "password" not in adbc_uri("postgresql://cs@db.example/crm", None)
