"""A catalogue of malformed inputs, each with its exact outcome.

Row-level problems quarantine the row with a reason; dataset-level problems stop the run with
one sentence naming the source, the column and what was expected (exit 1; 2 for the config).
Most cases run the plain functions a run uses (extract_dataset, validate_dataset, gate); the
last few run the real command line to prove the exit status and that no traceback shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from flows.cli.init import write_starter_config
from tasks.config import (
    ActionRule,
    Config,
    MeasureConfig,
    MeasureOverride,
    OverridesConfig,
    SegmentsConfig,
    SourceConfig,
    SurveyScale,
    TierModel,
    load_config,
    parse_config,
)
from tasks.defaults import default_actions, default_measures
from tasks.errors import ChsError
from tasks.schemas import DATASETS
from tasks.sources.plan import Window
from tasks.sources.read import extract_dataset
from tasks.validate import ValidatedDataset, gate, validate_dataset

RUN = datetime(2026, 4, 1, 12)
WINDOW = Window(date(2026, 3, 31), RUN)
ACCOUNTS = "account_id,name\na,Acme\nb,Beta\n"
IDS = ["a", "b"]  # the accounts every other dataset may refer to
ORDERS = "order_id,account_id,ordered_at,amount,kind\n"
SURVEYS = "response_id,account_id,survey,score,submitted_at\n"
TICKETS = "ticket_id,account_id,opened_at,resolved_at,priority\n"
ROOT = Path(__file__).resolve().parents[2]

# the reasons of the suites, as they appear in quarantine files
DUPLICATE = "identifies one record; a duplicate makes counts and sums wrong"
ORPHAN = "must belong to an account in the CRM; orphans cannot be scored"
AFTER_RUN = "after the run time is an impossible date (clock or import error)"
NOT_A_TIME = "is not a date-time (YYYY-MM-DD[ HH:MM[:SS]])"


@dataclass(frozen=True)
class Fails:
    """The run stops: the error's exit status and its exact sentence ({tmp}: the folder)."""

    exit_code: int
    message: str


@dataclass(frozen=True)
class Splits:
    """The dataset is read: these ids are accepted, these quarantined with these reasons."""

    accepted: list[str]
    quarantined: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)  # accepted values per column


@dataclass(frozen=True)
class Case:
    dataset: str
    files: dict[str, str | bytes]
    source: dict[str, Any]
    outcome: Fails | Splits
    # the frames are tiny, so row-level cases raise the gate's limit to stay under it
    validation: dict[str, Any] = field(default_factory=lambda: {"max_invalid_share": 0.9})


def _csv(name: str, header: str, *rows: str, encoding: str = "utf-8") -> dict[str, str | bytes]:
    return {name: (header + "".join(r + "\n" for r in rows)).encode(encoding)}


CASES: dict[str, Case] = {
    # --- dataset level: the run stops --------------------------------------------------------
    "missing required column": Case(
        "accounts",
        {"accounts.csv": "account_id,title\na,Acme\n"},
        {"uri": "accounts.csv"},
        Fails(
            1,
            "accounts source accounts.csv has no column 'name', which the accounts dataset "
            "requires; map it in [sources.accounts.columns].",
        ),
    ),
    "mapped column absent": Case(
        "orders",
        _csv("orders.csv", ORDERS, "o1,a,2026-03-01,1,order"),
        {"uri": "orders.csv", "columns": {"amount": "Total"}},
        Fails(1, "orders source orders.csv has no column 'Total' (named in its column mapping)."),
    ),
    "missing file": Case(
        "orders",
        {},
        {"uri": "exports/orders.csv"},
        Fails(
            1,
            "orders source exports/orders.csv: file {tmp}/exports/orders.csv does not exist.",
        ),
    ),
    "glob matching nothing": Case(
        "orders",
        {},
        {"uri": "exports/*.csv"},
        Fails(1, "orders source exports/*.csv: no file matches {tmp}/exports/*.csv."),
    ),
    "empty accounts file": Case(
        "accounts",
        {"accounts.csv": ""},
        {"uri": "accounts.csv"},
        Fails(1, "accounts source accounts.csv is empty: there are no accounts to score."),
    ),
    "header-only accounts file": Case(
        "accounts",
        {"accounts.csv": "account_id,name\n"},
        {"uri": "accounts.csv"},
        Fails(1, "accounts source accounts.csv has no rows: there are no accounts to score."),
    ),
    "no valid account": Case(
        "accounts",
        {"accounts.csv": "account_id,name\n,Acme\n,Beta\n"},
        {"uri": "accounts.csv"},
        Fails(
            1,
            "accounts source accounts.csv: none of its 2 rows passed validation, so there is "
            "nothing to score; most often column account_id: an account without an id cannot "
            "be joined to anything.",
        ),
    ),
    "most rows invalid": Case(
        "orders",
        _csv("orders.csv", ORDERS, "o1,a,2026-03-01,1,order", "o2,a,2026-03-01,-1,order"),
        {"uri": "orders.csv"},
        Fails(
            1,
            "orders source orders.csv: 1 of 2 rows (50%) failed validation, above the 20% "
            "allowed by [validation] max_invalid_share; most often column amount: amounts are "
            "non-negative; refunds are marked by kind, not by sign.",
        ),
        validation={},  # the default limit: 20%
    ),
    "every event of an unknown account": Case(
        "usage_events",
        _csv(
            "ev.csv", "account,user_id,event,ts\n", "A,u,login,2026-03-30", "B,u,login,2026-03-30"
        ),
        {"uri": "ev.csv", "columns": {"account_id": "account"}},
        Fails(
            1,
            f"usage_events source ev.csv: 2 of 2 rows (100%) failed validation, above the 20% "
            f"allowed by [validation] max_invalid_share; most often column account_id: every "
            f"usage_events row {ORPHAN}.",
        ),
        validation={},
    ),
    "text in another encoding": Case(
        "accounts",
        _csv("accounts.csv", "account_id,name\n", "a,Müller", encoding="latin-1"),
        {"uri": "accounts.csv"},
        Fails(
            1,
            "accounts source accounts.csv: text is not valid utf-8 (invalid start byte at byte "
            "19); set encoding in the source's config.",  # ü is the 20th byte
        ),
    ),
    "unknown encoding": Case(
        "accounts",
        {},
        {"uri": "accounts.csv", "encoding": "cp-1251"},
        Fails(2, "config: sources.accounts.encoding: unknown encoding 'cp-1251'."),
    ),
    "unquoted comma in CSV": Case(
        "orders",
        _csv("orders.csv", ORDERS, "o1,a,2026-03-01,1,order", "o2,a,2026-03-01,1,000.50,order"),
        {"uri": "orders.csv"},
        Fails(
            1,
            "orders source orders.csv: line 3 of orders.csv has 6 fields but the header has 5; "
            "quote values that contain the separator.",
        ),
    ),
    "broken JSON line": Case(
        "outcomes",
        {"o.jsonl": '{"account_id": "a", "goal": "g"}\n{"account_id": "b", goal}\n'},
        {"uri": "o.jsonl"},
        Fails(1, "outcomes source o.jsonl: line 2 of o.jsonl is not a JSON object."),
    ),
    "not really Parquet": Case(
        "usage_events",
        {"ev.parquet": "account_id,user_id,event,ts\n"},
        {"uri": "ev.parquet"},
        Fails(
            1,
            "usage_events source ev.parquet cannot be read: parquet: File out of specification: "
            "The file must end with PAR1 or PARE.",
        ),
    ),
    "unknown file type": Case(
        "orders",
        {"orders.numbers": "PK"},
        {"uri": "orders.numbers"},
        Fails(
            2,
            "{tmp}/orders.numbers: unknown file type '.numbers'; use .csv, .parquet, .jsonl or "
            ".xlsx.",
        ),
    ),
    "broken workbook": Case(
        "orders",
        {"orders.xlsx": "PK"},
        {"uri": "orders.xlsx"},
        Fails(
            1,
            "orders source orders.xlsx: orders.xlsx is not a readable workbook (calamine error: "
            "Xlsx error: Zip error: invalid Zip archive: Could not find EOCD).",
        ),
    ),
    "wrong DuckDB table": Case(
        "orders",
        {},
        {"uri": "duckdb:///crm.duckdb", "table": "invoices"},
        Fails(
            1,
            "orders source duckdb:///crm.duckdb (invoices): file {tmp}/crm.duckdb does not exist.",
        ),
    ),
    "PostgreSQL URL of no server": Case(
        "orders",
        {},
        {"uri": "postgresql://postgres@127.0.0.1:1/crm", "table": "orders"},
        Fails(
            1,
            "orders source postgresql://postgres@127.0.0.1:1/crm (orders): "
            'connection to server at "127.0.0.1", port 1 failed: Connection refused.',
        ),
    ),
    "password written in the URL": Case(
        "orders",
        {},
        {"uri": "postgresql://crm:hunter2@db.example.com/crm", "table": "orders"},
        Fails(
            2,
            "config: sources.orders: uri contains a password; credentials never live in the "
            "config file: use ${{ENV}} in the uri, password_env or password_secret.",
        ),
    ),
    "unset variable in the URL": Case(
        "orders",
        {},
        {"uri": "postgresql://crm:${CHS_CATALOGUE_UNSET}@db.example.com/crm", "table": "orders"},
        Fails(2, "Environment variable CHS_CATALOGUE_UNSET named in a source URI is not set."),
    ),
    # --- row level: quarantined with a reason, the rest accepted -------------------------------
    "wrong types": Case(
        "orders",
        _csv("orders.csv", ORDERS, "o1,a,2026-03-01,12.5,order", "o2,a,yesterday,abc,order"),
        {"uri": "orders.csv"},
        Splits(
            ["o1"],
            {"o2": f"ordered_at: 'yesterday' {NOT_A_TIME}; amount: 'abc' is not a number"},
        ),
    ),
    "non-numeric and negative amounts": Case(
        "orders",
        _csv(
            "orders.csv",
            ORDERS,
            "o1,a,2026-03-01,1,",
            'o2,a,2026-03-01,"12,50",order',
            "o3,a,2026-03-01,N/A,order",
            "o4,a,2026-03-01,,order",
            "o5,a,2026-03-01,-5,order",
            "o6,a,2026-03-01,-5,refund",
            "o7,a,2026-03-01,5,gift",
        ),
        {"uri": "orders.csv"},
        Splits(
            ["o1", "o6"],
            {
                "o2": "amount: '12,50' is not a number",
                "o3": "amount: 'N/A' is not a number",
                "o4": "amount: an order without an amount would distort spend",
                "o5": "amount: amounts are non-negative; refunds are marked by kind, not by sign",
                "o7": "kind: kind is order or refund",
            },
        ),
    ),
    "scores out of range per survey": Case(
        "survey_responses",
        _csv(
            "s.csv",
            SURVEYS,
            "r1,a,nps,10,2026-03-01",
            "r2,a,nps,11,2026-03-01",
            "r3,a,csat,0,2026-03-01",
            "r4,a,csat,5,2026-03-01",
            "r5,a,ces,8,2026-03-01",
            "r6,a,ces,1,2026-03-01",
        ),
        {"uri": "s.csv"},
        Splits(
            ["r1", "r4", "r6"],
            {
                "r2": "score: NPS answers are 0-10",
                "r3": "score: CSAT answers are 1-5",
                "r5": "score: CES answers are 1-7",
            },
        ),
    ),
    "unknown survey type": Case(
        "survey_responses",
        _csv("s.csv", SURVEYS, "r1,a, NPS ,9,2026-03-01", "r2,a,poll,3,2026-03-01"),
        {"uri": "s.csv"},
        Splits(
            ["r1"],  # case and spaces are folded: " NPS " is nps
            {"r2": "survey: survey is nps, csat or ces; other surveys have no defined scale"},
        ),
    ),
    "duplicate ids": Case(
        "orders",
        _csv(
            "orders.csv", ORDERS, "o1,a,2026-03-01,1,", "o1,b,2026-03-02,2,", "o3,a,2026-03-01,1,"
        ),
        {"uri": "orders.csv"},
        Splits(["o3"], {"o1": f"order_id: order_id {DUPLICATE}"}),
    ),
    "null ids": Case(
        "tickets",
        _csv("t.csv", TICKETS, "t1,a,2026-03-01,,", ",a,2026-03-01,,", "t3,,2026-03-01,,"),
        {"uri": "t.csv"},
        Splits(
            ["t1"],
            {
                "None": "ticket_id: a ticket without an id cannot be de-duplicated",  # no id
                "t3": "account_id: a ticket must belong to an account",
            },
        ),
    ),
    "unknown accounts": Case(
        "tickets",
        _csv("t.csv", TICKETS, "t1,a,2026-03-01,,", "t2,zz,2026-03-01,,"),
        {"uri": "t.csv"},
        Splits(["t1"], {"t2": f"account_id: every tickets row {ORPHAN}"}),
    ),
    "impossible dates": Case(
        "orders",
        _csv(
            "orders.csv", ORDERS, "o1,a,2026-02-28,1,", "o2,a,2026-02-30,1,", "o3,a,2206-01-01,1,"
        ),
        {"uri": "orders.csv"},
        Splits(
            ["o1"],
            {
                "o2": f"ordered_at: '2026-02-30' {NOT_A_TIME}",
                "o3": f"ordered_at: ordered_at {AFTER_RUN}",
            },
        ),
    ),
    "mixed date formats": Case(
        "orders",
        _csv(
            "orders.csv",
            ORDERS,
            "o1,a,2026-03-01,1,",
            "o2,a,2026-03-01T10:00:00Z,1,",
            "o3,a,2026-03-01 10:00:00.250,1,",
            "o4,a,03/01/2026,1,",
            "o5,a,1 March 2026,1,",
        ),
        {"uri": "orders.csv"},
        Splits(
            ["o1", "o2", "o3"],  # ISO 8601 in any spelling; anything else is not guessed
            {
                "o4": f"ordered_at: '03/01/2026' {NOT_A_TIME}",
                "o5": f"ordered_at: '1 March 2026' {NOT_A_TIME}",
            },
            {
                "ordered_at": [
                    datetime(2026, 3, 1),
                    datetime(2026, 3, 1, 10),
                    datetime(2026, 3, 1, 10, 0, 0, 250000),
                ]
            },
        ),
    ),
    "resolved before opened": Case(
        "tickets",
        _csv(
            "t.csv",
            TICKETS,
            "t1,a,2026-03-01 10:00,2026-03-01 10:00,high",
            "t2,a,2026-03-01 10:00,2026-03-01 09:00,high",
            "t3,a,2026-03-01 10:00,2026-05-01 09:00,high",
        ),
        {"uri": "t.csv"},
        Splits(
            ["t1"],
            {
                "t2": "resolved_at,opened_at: a ticket cannot be resolved before it was opened",
                "t3": f"resolved_at: resolved_at {AFTER_RUN}",
            },
        ),
    ),
    "priorities of another scale": Case(
        "tickets",
        _csv("t.csv", TICKETS, "t1,a,2026-03-01,,P1", "t2,a,2026-03-01,,Sev2"),
        {"uri": "t.csv", "values": {"priority": {"P1": "urgent"}}},
        Splits(
            ["t1"],
            {
                "t2": "priority: priority is low, normal, high or urgent (map other scales in the config)"
            },
            {"priority": ["urgent"]},
        ),
    ),
    "account facts that contradict": Case(
        "accounts",
        {
            "accounts.csv": "account_id,name,status,seats,contract_start,churned_at\n"
            "a,Acme,Active,10,2025-01-01,\n"
            "b,Beta,paused,2.5,2025-01-01,\n"
            "c,Gamma,churned,-1,2025-06-01,2025-05-01\n"
            "d,Delta,active,1,2025-01-01,\n"
            "e,Eps,active,1,2025-01-01,\n"
        },
        {"uri": "accounts.csv"},
        Splits(
            ["a", "d", "e"],
            {
                "b": "seats: '2.5' is not a whole number",
                "c": "seats: seats are a count of licences and cannot be negative; "
                "churned_at,contract_start: a churn date before the contract start is impossible",
            },
        ),
    ),
    "BOM": Case(
        "accounts",
        {"accounts.csv": "\ufeffaccount_id,name\na,Acme\nb,Beta\n".encode()},
        {"uri": "accounts.csv"},
        Splits(["a", "b"], values={"name": ["Acme", "Beta"]}),
    ),
    "cp1251": Case(
        "accounts",
        _csv("accounts.csv", "account_id,name\n", "a,ООО «Ромашка»", "b,Бета", encoding="cp1251"),
        {"uri": "accounts.csv", "encoding": "cp1251"},
        Splits(["a", "b"], values={"name": ["ООО «Ромашка»", "Бета"]}),
    ),
    "latin-1": Case(
        "accounts",
        _csv(
            "accounts.csv",
            "account_id,name\n",
            "a,Müller Straße GmbH",
            "b,Señor Café",
            encoding="latin-1",
        ),
        {"uri": "accounts.csv", "encoding": "latin-1"},
        Splits(["a", "b"], values={"name": ["Müller Straße GmbH", "Señor Café"]}),
    ),
    "quoted commas and newlines": Case(
        "accounts",
        {"accounts.csv": 'account_id,name\na,"Acme, Inc."\nb,"Beta\nSecond line"\n'},
        {"uri": "accounts.csv"},
        Splits(["a", "b"], values={"name": ["Acme, Inc.", "Beta\nSecond line"]}),
    ),
    "hostile text": Case(
        "accounts",
        {
            "accounts.csv": "account_id,name\na,<script>alert(1)</script>\n"
            'b,"Evil\r\nBcc: everyone@example.com"\n'
        },
        {"uri": "accounts.csv"},
        # kept verbatim: data is not rewritten; the report escapes it and mail headers refuse it
        Splits(
            ["a", "b"],
            values={"name": ["<script>alert(1)</script>", "Evil\r\nBcc: everyone@example.com"]},
        ),
    ),
    "header-only orders file": Case(
        "orders", {"orders.csv": ORDERS}, {"uri": "orders.csv"}, Splits([])
    ),
    "empty orders file": Case("orders", {"orders.csv": ""}, {"uri": "orders.csv"}, Splits([])),
}


def _run(tmp: Path, case: Case) -> ValidatedDataset:
    """Write the files, then extract, validate and gate the dataset as a run does."""
    for name, content in {"accounts.csv": ACCOUNTS, **case.files}.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(content.encode() if isinstance(content, str) else content)
    sources = {"accounts": {"uri": "accounts.csv"}, case.dataset: case.source}
    cfg = parse_config({"sources": sources, "validation": case.validation}, tmp)
    ids = None if case.dataset == "accounts" else IDS
    v = validate_dataset(extract_dataset(case.dataset, cfg, WINDOW), case.dataset, cfg, RUN, ids)
    gate(v, cfg)
    return v


@pytest.mark.parametrize("name", CASES)
def test_catalogue(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    if isinstance(case.outcome, Fails):
        with pytest.raises(ChsError) as err:
            _run(tmp_path, case)
        assert str(err.value) == case.outcome.message.format(tmp=tmp_path.resolve())
        assert err.value.exit_code == case.outcome.exit_code
        return
    v = _run(tmp_path, case)
    key = DATASETS[case.dataset].key or "source_row"
    assert v.accepted[key].to_list() == case.outcome.accepted
    quarantined = {
        str(k): r for k, r in zip(v.quarantined[key], v.quarantined["reason"], strict=True)
    }
    assert quarantined == case.outcome.quarantined
    for column, values in case.outcome.values.items():
        assert v.accepted[column].to_list() == values
    # nothing is lost: every row read is accepted or quarantined
    s = v.summary()
    assert s["rows_read"] == s["rows_accepted"] + s["rows_quarantined"]


def test_wrong_postgres_table(tmp_path: Path) -> None:
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip("the PostgreSQL server on 127.0.0.1:5432 is unreachable")
    case = Case(
        "orders",
        {},
        {"uri": "postgresql://postgres@127.0.0.1:5432/postgres", "table": "chs_no_such_table"},
        Fails(0, ""),
    )
    with pytest.raises(ChsError) as err:
        _run(tmp_path, case)
    assert str(err.value) == (
        "orders source postgresql://postgres@127.0.0.1:5432/postgres (chs_no_such_table): "
        'relation "chs_no_such_table" does not exist.'
    )


def test_broken_config_file(tmp_path: Path) -> None:
    path = tmp_path / "chs.toml"
    path.write_text('[sources.accounts\nuri = "a.csv"\n')
    with pytest.raises(ChsError) as err:
        load_config(path)
    assert str(err.value) == (
        f"Config file {path} is not valid TOML: Expected ']' at the end of a table declaration "
        "(at line 1, column 18)."
    )
    assert err.value.exit_code == 2


# --- through the real command line ---------------------------------------------------------

CLI_CASES: dict[str, dict[str, str]] = {
    "broken config": {"chs.toml": '[sources.accounts\nuri = "accounts.csv"\n'},
    "mostly invalid orders": {
        "chs.toml": '[sources.accounts]\nuri = "accounts.csv"\n[sources.orders]\nuri = "orders.csv"\n',
        "accounts.csv": 'account_id,name\na,<script>alert(1)</script>\nb,"Evil\r\nBcc: x@example.com"\n',
        "orders.csv": ORDERS + "o1,a,2026-03-01,1,order\no2,a,2026-03-01,abc,order\n",
    },
    "no database server": {
        "chs.toml": '[sources.accounts]\nuri = "postgresql://postgres@127.0.0.1:1/crm"\ntable = "accounts"\n',
    },
}


@pytest.fixture(scope="module")
def cli_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run `chs validate` on each CLI case, all at once (each start-up imports GX and Prefect)."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    procs = {}
    for name, files in CLI_CASES.items():
        folder = tmp_path_factory.mktemp("cli")
        for file, text in files.items():
            (folder / file).write_bytes(text.encode())
        procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "validate",
                "--config",
                str(folder / "chs.toml"),
                "--as-of",
                "2026-03-31",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    runs = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=180)
        runs[name] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return runs


def _error_line(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("chs: error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.slow
def test_cli_broken_config_exits_2(cli_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    p = cli_runs["broken config"]
    assert p.returncode == 2
    assert _error_line(p).endswith(
        "chs.toml is not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 18)."
    )


@pytest.mark.slow
def test_cli_gate_exits_1_after_the_counts(
    cli_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    p = cli_runs["mostly invalid orders"]
    assert p.returncode == 1
    assert _error_line(p) == (
        "chs: error: orders source orders.csv: 1 of 2 rows (50%) failed validation, above the 20% "
        "allowed by [validation] max_invalid_share; most often column amount: values not a number."
    )
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["accounts", "read", "2", "accepted", "2", "quarantined", "0"]
    assert lines[1].split() == ["orders", "read", "2", "accepted", "1", "quarantined", "1"]
    assert "<script>" not in p.stdout + p.stderr  # the command line never echoes the data


@pytest.mark.slow
def test_cli_unreachable_database_exits_1(
    cli_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    p = cli_runs["no database server"]
    assert p.returncode == 1
    assert _error_line(p) == (
        "chs: error: accounts source postgresql://postgres@127.0.0.1:1/crm (accounts): "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused.'
    )


# --- the starter config: the well-formed baseline ------------------------------------------


def test_starter_config_loads_and_lists_every_key(tmp_path: Path) -> None:
    path = write_starter_config(tmp_path)
    assert path == tmp_path / "chs.toml"
    cfg = load_config(path)
    assert set(cfg.sources) == set(DATASETS)  # one example of each kind of source
    # every section holds the defaults: [scoring] the measures of tasks/defaults.py, the
    # [[actions]] its playbooks, and the rest what a config that leaves them out gets
    defaults = parse_config({"sources": {"accounts": {"uri": "a.csv"}}}, tmp_path)
    assert cfg.model_dump(exclude={"sources", "base_dir"}) == defaults.model_dump(
        exclude={"sources", "base_dir"}
    )
    assert len(cfg.scoring.measures) == len(default_measures())
    assert len(cfg.actions) == len(default_actions())
    words = set(re.findall(r"\w+", path.read_text()))
    sections = [
        f.annotation
        for f in Config.model_fields.values()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    ]
    nested = [SourceConfig, SurveyScale, SegmentsConfig, MeasureConfig, ActionRule]
    for model in [*sections, *nested, TierModel, MeasureOverride, OverridesConfig]:
        assert set(model.model_fields) <= words, model.__name__  # each key is written or explained


def test_starter_config_is_not_overwritten_by_accident(tmp_path: Path) -> None:
    path = write_starter_config(tmp_path / "team.toml")
    path.write_text("# edited\n")
    with pytest.raises(
        ChsError, match=r"team.toml already exists; pass --force to overwrite it\.$"
    ) as err:
        write_starter_config(path)
    assert err.value.exit_code == 2
    assert path.read_text() == "# edited\n"
    write_starter_config(path, force=True)
    load_config(path)
