"""CRM write-back against loopback HubSpot and Salesforce servers that check the vendors'
request shapes, the Bearer token and the batch limits, and against the real PostgreSQL.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest

from flows.cli.main import main
from tasks.config import Config, parse_config
from tasks.errors import ConfigError
from tasks.history.connect import open_history
from tasks.http_retry import Retry
from tasks.writeback.run import writeback
from tests.loopback_http import Answer, Loopback, Request, loopback_server

AS_OF = date(2026, 11, 16)
TOKEN = "pat-na1-0000-secret-token"
N = 250  # three HubSpot batches (100, 100, 50), two Salesforce ones (200, 50)
NO_WAIT = Retry(sleep=lambda _s: None)


def _scores(n: int = N, bump: dict[str, float] | None = None) -> pl.DataFrame:
    ids = [f"A{i:04d}" for i in range(n)]
    score = [30.0 + (i % 60) + (bump or {}).get(a, 0.0) for i, a in enumerate(ids)]
    return pl.DataFrame(
        {
            "account_id": ids,
            "as_of": [AS_OF] * n,
            "score": score,
            "segment": ["at_risk" if s < 40 else "neutral" for s in score],
            "top_drivers": ["nps_account (-9.1); stickiness (-2.0)"] * (n - 1) + [None],
            "p_churn_90d": [0.12346] * (n - 1) + [None],
            "crm_id": [str(9000 + i) if i % 2 else None for i in range(n)],  # half: account_id
        }
    )


def _write_day(root: Path, scores: pl.DataFrame, day: date = AS_OF) -> None:
    folder = root / "out" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    scores.write_parquet(folder / "scores.parquet")


def _cfg(root: Path, writeback_toml: str, history: str | None = None) -> Config:
    text = (
        f'[sources.accounts]\nuri = "a.csv"\n[output]\ndir = "out"\n'
        f'history = "{history or "duckdb:///out/history.duckdb"}"\n[writeback]\n{writeback_toml}'
    )
    return parse_config(tomllib.loads(text), root)


def _hubspot(bad: set[str]) -> Any:
    """Answer like HubSpot's batch update: 200, or 207 naming the inputs that failed."""

    def respond(r: Request) -> Answer:
        if r.method != "POST" or r.path != "/crm/v3/objects/companies/batch/update":
            return 404, {}, b'{"status":"error","category":"OBJECT_NOT_FOUND"}'
        if r.headers.get("Authorization") != f"Bearer {TOKEN}":
            echo = r.headers.get("Authorization", "")  # a careless server repeats the token
            return 401, {}, f'{{"category":"INVALID_AUTHENTICATION","got":"{echo}"}}'.encode()
        inputs = r.json()["inputs"]
        if not 1 <= len(inputs) <= 100 or set(r.json()) != {"inputs"}:
            return 400, {}, b'{"status":"error","category":"VALIDATION_ERROR"}'
        for i in inputs:
            assert set(i) == {"id", "properties"}
            assert all(isinstance(v, str) for v in i["properties"].values())
        failed = [i["id"] for i in inputs if i["id"] in bad]
        doc: dict[str, Any] = {
            "status": "COMPLETE",
            "results": [
                {"id": i["id"], "properties": i["properties"], "archived": False}
                for i in inputs
                if i["id"] not in bad
            ],
            "startedAt": "2026-11-16T06:00:00Z",
            "completedAt": "2026-11-16T06:00:01Z",
        }
        if failed:
            doc["numErrors"] = len(failed)
            doc["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some COMPANY objects, they may be deleted or not exist.",
                    "context": {"ids": failed},
                }
            ]
        return (
            (207 if failed else 200),
            {"Content-Type": "application/json"},
            json.dumps(doc).encode(),
        )

    return respond


def _salesforce(bad: set[str]) -> Any:
    """Answer like sObject Collections: one {id, success, errors} per record, in order."""

    def respond(r: Request) -> Answer:
        if r.method != "PATCH" or r.path != "/services/data/v62.0/composite/sobjects":
            return (
                404,
                {},
                b'[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]',
            )
        if r.headers.get("Authorization") != f"Bearer {TOKEN}":
            return (
                401,
                {},
                b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]',
            )
        body = r.json()
        records = body["records"]
        if body.get("allOrNone") is not False or not 1 <= len(records) <= 200:
            return 400, {}, b'[{"message":"bad request","errorCode":"INVALID_FIELD"}]'
        out = []
        for rec in records:
            assert rec["attributes"] == {"type": "Account"}
            assert "id" in rec
            if rec["id"] in bad:
                err = {
                    "statusCode": "ENTITY_IS_DELETED",
                    "message": "entity is deleted",
                    "fields": [],
                }
                out.append({"success": False, "errors": [err]})
            else:
                out.append({"id": rec["id"], "success": True, "errors": []})
        return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()

    return respond


@pytest.fixture
def crm() -> Iterator[Loopback]:
    with loopback_server() as server:
        yield server


def _log(cfg: Config) -> pl.DataFrame:
    store = open_history(cfg)
    try:
        return store._frame(
            "select * from writeback_log",
            [],
            __import__("tasks.history.schema", fromlist=["x"]).schema_of("writeback_log"),
        )  # type: ignore[attr-defined]
    finally:
        store.close()


def test_dry_run_writes_the_intended_changes_and_sends_nothing(
    crm: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHS_CRM_TOKEN", TOKEN)
    _write_day(tmp_path, _scores())
    cfg = _cfg(tmp_path, f'target = "hubspot"\nbase_url = "{crm.url}"\n')
    r = writeback(cfg)  # the latest date, dry run
    assert (r.as_of, r.accounts, r.values, r.applied) == (AS_OF, N, 5 * N, False)
    assert crm.requests == []
    csv = pl.read_csv(tmp_path / "out" / "2026-11-16" / "writeback" / "hubspot.csv")
    assert csv.columns == [
        "account_id",
        "crm_id",
        "field",
        "property",
        "value",
        "previous",
        "result",
    ]
    first = csv.filter(pl.col("account_id") == "A0001").sort("field")
    assert first["crm_id"].unique().to_list() == ["9001"]  # accounts.crm_id when present
    assert dict(zip(first["property"], first["value"], strict=True)) == {
        "chs_health_as_of": '"2026-11-16"',
        "chs_p_churn_90d": "0.1235",
        "chs_health_score": "31.0",
        "chs_health_segment": '"at_risk"',
        "chs_top_driver": '"nps_account"',
    }
    assert csv.filter(pl.col("account_id") == "A0000")["crm_id"][0] == "A0000"  # else account_id
    assert set(csv["result"]) == {"dry run"}


def test_hubspot_batches_of_100_partial_failures_retried_next_run_then_nothing(
    crm: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHS_CRM_TOKEN", TOKEN)
    _write_day(tmp_path, _scores())
    cfg = _cfg(tmp_path, f'target = "hubspot"\nbase_url = "{crm.url}"\n')
    crm.respond = _hubspot(bad={"9001", "A0100"})
    r = writeback(cfg, AS_OF, apply=True, retry=NO_WAIT)
    assert [len(q.json()["inputs"]) for q in crm.requests] == [100, 100, 50]
    assert r.written == N - 2
    assert sorted(r.failed) == ["9001", "A0100"]
    assert "OBJECT_NOT_FOUND" in r.failed["9001"]
    props = crm.requests[0].json()["inputs"][0]  # records go sorted by CRM id
    assert props == {
        "id": "9001",
        "properties": {
            "chs_health_as_of": "2026-11-16",
            "chs_health_score": "31.0",
            "chs_health_segment": "at_risk",
            "chs_p_churn_90d": "0.1235",
            "chs_top_driver": "nps_account",
        },
    }
    last = next(i for q in crm.requests for i in q.json()["inputs"] if i["id"] == "9249")
    assert last["properties"]["chs_p_churn_90d"] == ""  # null clears the property
    log = _log(cfg)
    assert log.height == 5 * N
    assert log.filter(pl.col("status") == "failed")["crm_id"].unique().sort().to_list() == [
        "9001",
        "A0100",
    ]
    csv = pl.read_csv(r.csv)
    assert csv.filter(pl.col("crm_id") == "9001")["result"][0].startswith(
        "failed: HubSpot: OBJECT_NOT_FOUND"
    )

    crm.requests.clear()
    crm.respond = _hubspot(bad=set())
    again = writeback(cfg, AS_OF, apply=True, retry=NO_WAIT)  # the failed ones, only
    assert [sorted(i["id"] for i in q.json()["inputs"]) for q in crm.requests] == [
        ["9001", "A0100"]
    ]
    assert (again.written, again.failed) == (2, {})

    crm.requests.clear()
    third = writeback(cfg, AS_OF, apply=True, retry=NO_WAIT)
    assert crm.requests == []
    assert (third.values, third.written) == (0, 0)

    # next week: only the changed values go (score of two accounts, and as_of of every account)
    _write_day(tmp_path, _scores(bump={"A0003": 5.0}), date(2026, 11, 23))
    writeback(cfg, date(2026, 11, 23), apply=True, retry=NO_WAIT)
    sent = {i["id"]: i["properties"] for q in crm.requests for i in q.json()["inputs"]}
    assert len(sent) == N
    assert sent["9003"] == {
        "chs_health_as_of": "2026-11-23",
        "chs_health_score": "38.0",
    }
    assert sent["A0002"] == {"chs_health_as_of": "2026-11-23"}


def test_salesforce_collections_of_200_per_record_results(
    crm: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_TOKEN", TOKEN)
    _write_day(tmp_path, _scores())
    wb = f'target = "salesforce"\nbase_url = "{crm.url}"\ntoken_env = "SF_TOKEN"\n'
    wb += 'fields = ["score", "segment"]\n[writeback.properties]\nscore = "CHS_Score__c"\n'
    cfg = _cfg(tmp_path, wb)
    crm.respond = _salesforce(bad={"A0010"})
    r = writeback(cfg, AS_OF, apply=True, retry=NO_WAIT)
    assert [len(q.json()["records"]) for q in crm.requests] == [200, 50]
    rec = crm.requests[0].json()["records"][0]
    assert rec == {
        "attributes": {"type": "Account"},
        "id": "9001",
        "CHS_Score__c": 31.0,
        "Health_Segment__c": "at_risk",
    }
    assert r.written == N - 1
    assert r.failed == {"A0010": "Salesforce: ENTITY_IS_DELETED: entity is deleted"}
    crm.requests.clear()
    crm.respond = _salesforce(bad=set())
    writeback(cfg, AS_OF, apply=True, retry=NO_WAIT)
    assert [[x["id"] for x in q.json()["records"]] for q in crm.requests] == [["A0010"]]
    crm.requests.clear()
    assert writeback(cfg, AS_OF, apply=True, retry=NO_WAIT).values == 0
    assert crm.requests == []


def test_a_refused_token_stops_every_batch_and_never_shows_the_token(
    crm: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHS_CRM_TOKEN", "wrong-" + TOKEN)
    _write_day(tmp_path, _scores())
    cfg = _cfg(tmp_path, f'target = "hubspot"\nbase_url = "{crm.url}"\n')
    crm.respond = _hubspot(bad=set())
    r = writeback(cfg, AS_OF, apply=True, retry=NO_WAIT)
    assert len(crm.requests) == 1
    assert r.written == 0
    assert len(r.failed) == N
    assert "401" in r.failed["9001"]
    assert "INVALID_AUTHENTICATION" in r.failed["9001"]
    assert r.failed["A0000"] == "not sent: an earlier batch was refused"
    assert TOKEN not in json.dumps(r.failed)  # the server echoed it; the error hides it
    monkeypatch.delenv("CHS_CRM_TOKEN")
    with pytest.raises(ConfigError, match="token_env names CHS_CRM_TOKEN, which is not set"):
        writeback(cfg, AS_OF, apply=True)


def test_429_and_500_are_retried_and_honour_retry_after(
    crm: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHS_CRM_TOKEN", TOKEN)
    _write_day(tmp_path, _scores(n=20))
    cfg = _cfg(tmp_path, f'target = "hubspot"\nbase_url = "{crm.url}"\n')
    answers = iter([(429, {"Retry-After": "2"}, b"{}"), (502, {}, b"bad gateway")])
    ok = _hubspot(bad=set())
    crm.respond = lambda r: next(answers, None) or ok(r)
    waits: list[float] = []
    r = writeback(cfg, AS_OF, apply=True, retry=Retry(sleep=waits.append))
    assert waits == [2.0, 2.0]
    assert len(crm.requests) == 3
    assert r.written == 20


def test_the_postgresql_table_holds_one_row_per_account_with_the_latest_values(
    pg_database: str, tmp_path: Path
) -> None:
    _write_day(tmp_path, _scores())
    cfg = _cfg(tmp_path, f'target = "{pg_database}"\ntable = "crm_health"\n', history=pg_database)
    r = writeback(cfg, AS_OF, apply=True)
    assert (r.written, r.failed) == (N, {})
    _write_day(tmp_path, _scores(bump={"A0003": 5.0}), date(2026, 11, 23))
    writeback(cfg, date(2026, 11, 23), apply=True)
    with psycopg.connect(pg_database) as con:
        rows = con.execute(
            "select account_id, crm_id, score, segment, top_driver, p_churn_90d, as_of "
            "from crm_health order by account_id"
        ).fetchall()
    assert len(rows) == N
    assert rows[3] == ("A0003", "9003", 38.0, "at_risk", "nps_account", 0.1235, date(2026, 11, 23))
    assert rows[-1][5] is None  # null p_churn_90d
    again = writeback(cfg, date(2026, 11, 23), apply=True)
    assert again.values == 0  # the second run of a date sends nothing
    assert _log(cfg).height == 2 * 5 * N  # every value written, logged in the PostgreSQL history


def test_chs_writeback_dry_run_and_apply_exit_status(
    crm: Loopback,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHS_CRM_TOKEN", TOKEN)
    _write_day(tmp_path, _scores(n=5))
    (tmp_path / "chs.toml").write_text(
        f'[sources.accounts]\nuri = "a.csv"\n[writeback]\ntarget = "hubspot"\nbase_url = "{crm.url}"\n'
    )
    config = str(tmp_path / "chs.toml")
    assert main(["writeback", "--config", config]) == 0
    assert (
        "25 changed values on 5 accounts would be written to hubspot (dry run"
        in capsys.readouterr().out
    )
    crm.respond = _hubspot(bad={"A0002"})
    assert main(["writeback", "--config", config, "--apply"]) == 1  # a failed id: exit 1
    out = capsys.readouterr().out
    assert "4 of 5 changed accounts written" in out
    assert "not written: A0002: HubSpot: OBJECT_NOT_FOUND" in out
    assert main(["writeback", "--config", config, "--as-of", "2026-01-05"]) == 2
    assert "There are no scores for 2026-01-05" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('target = "zoho"', "writeback.target: unknown target 'zoho'; use hubspot, salesforce"),
        (
            'target = "postgresql://u:hunter2@db/crm"',
            "writeback.target: target contains a password; credentials never live in the config",
        ),
        ('target = "salesforce"', "writeback: the salesforce target needs base_url"),
        ('target = "hubspot"\nfields = ["score", "arr"]', "writeback.fields: unknown field 'arr'"),
        (
            'target = "hubspot"\n[writeback.properties]\nscore = "health score"',
            "writeback: 'health score' is not a plain property or column name",
        ),
    ],
)
def test_bad_writeback_settings_are_one_sentence_config_errors(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _cfg(tmp_path, toml + "\n")


def test_chs_writeback_without_the_table_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "chs.toml").write_text('[sources.accounts]\nuri = "a.csv"\n')
    assert main(["writeback", "--config", str(tmp_path / "chs.toml")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "chs: error: [writeback] is not configured: set target "
        "(hubspot, salesforce or a database URL).\n"
    )
