"""Files that open right (issue 21): a hostile account name is inert in every CSV the run
writes, in the e-mails' CSV attachments and in ``at_risk.xlsx``; names keep their accents
(UTF-8 with a BOM); the actions export round-trips through an edit and back into a run.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import duckdb
import fastexcel
import polars as pl
import pytest

from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tasks.action_export import export_actions
from tasks.config import load_config
from tasks.xlsxfile import AT_RISK_FILE
from tests.conftest import DEMO_END

HOSTILE = '=HYPERLINK("http://x","y")'
ACCENTED = "Zürich Rück"
BOM = b"\xef\xbb\xbf"
RUNNABLE = re.compile(r"^[=+\-@\t\r]")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _hostile_demo(demo: Path) -> None:
    """Name every other account HOSTILE and the rest ACCENTED; add a quarantined survey row
    whose comment is a formula.
    """
    with duckdb.connect(str(demo / "crm.duckdb")) as con:
        con.execute(
            "UPDATE accounts SET name = CASE WHEN hash(account_id) % 2 = 0 THEN ? ELSE ? END",
            [HOSTILE, f"{ACCENTED}"],
        )
    nps = demo / "surveys" / "nps.csv"
    first = nps.read_text().splitlines()[1].split(",")
    bad = [f"{first[0]}X", first[1], first[2], "99", first[4], first[5], '"@SUM(1+1)"']
    with nps.open("a") as fh:
        fh.write(",".join(bad) + "\n")


def _inert(cell: str) -> bool:
    return not RUNNABLE.match(cell) or bool(NUMBER.match(cell))


def _check_csv(data: bytes, where: str) -> list[list[str]]:
    assert data.startswith(BOM), f"{where} has no byte-order mark"
    rows = list(csv.reader(io.StringIO(data[len(BOM) :].decode("utf-8"), newline="")))
    for row in rows:
        for cell in row:
            assert _inert(cell), f"{where}: {cell!r} would run as a formula"
    return rows


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_every_file_of_a_run_is_safe_and_keeps_names(demo: Path) -> None:
    _hostile_demo(demo)
    config = str(demo / "chs.toml")
    r = weekly_flow(WeeklyParams(config_path=config, as_of=DEMO_END))
    out = r.out
    csvs = sorted(out.rglob("*.csv"))
    names = {p.relative_to(out).as_posix() for p in csvs}
    assert {"scores.csv", "actions.csv", "scores_rollup.csv"} <= names
    assert "quarantine/survey_responses.csv" in names
    for path in csvs:
        _check_csv(path.read_bytes(), path.name)

    scores = pl.read_csv(out / "scores.csv", infer_schema=False)
    exact = pl.read_parquet(out / "scores.parquet")
    assert scores.columns == exact.columns  # names and order as in the Parquet (SPEC 6)
    assert set(scores["name"]) == {f"'{HOSTILE}", ACCENTED}
    quarantined = (out / "quarantine" / "survey_responses.csv").read_text("utf-8-sig")
    assert "'@SUM(1+1)" in quarantined

    # numbers at their kind's precision; Parquet keeps every digit
    assert scores["arr"].str.contains(r"^\d+\.\d{2}$").all()  # money: 2 places, not 2230.0000
    assert scores["score"].drop_nulls().str.contains(r"^\d+(\.\d)?$").all()
    assert scores["coverage"].drop_nulls().str.contains(r"^[01](\.\d{1,4})?$").all()
    assert exact["score"].drop_nulls().round(1).ne(exact["score"].drop_nulls()).any()

    attachments = 0
    for eml in sorted((out / "outbox").glob("*.eml")):
        msg = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
        for part in msg.iter_attachments():
            if part.get_filename().endswith(".csv"):
                _check_csv(part.get_payload(decode=True), f"{eml.name}/{part.get_filename()}")
                attachments += 1
    assert attachments >= 2

    book = out / AT_RISK_FILE
    with zipfile.ZipFile(book) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert len(sheets) == 2
        for name in sheets:
            xml = z.read(name).decode()
            assert "<f>" not in xml
            assert "<f " not in xml
            assert 'ySplit="1"' in xml
            assert "<autoFilter" in xml
    reader = fastexcel.read_excel(book)
    assert reader.sheet_names == ["At risk", "Actions"]
    at_risk = reader.load_sheet("At risk").to_polars()
    expected = exact.filter(pl.col("segment") == "at_risk")
    assert at_risk.height == expected.height > 0
    assert set(at_risk["name"]) <= {HOSTILE, ACCENTED}  # the text itself, never evaluated
    assert HOSTILE in set(at_risk["name"])
    assert at_risk.schema["arr"] == pl.Float64
    assert at_risk.schema["score"] == pl.Float64
    assert at_risk.schema["renewal_date"] in (pl.Date, pl.Datetime("ms"))
    assert at_risk["score"].to_list() == sorted(at_risk["score"].to_list())  # worst first
    actions = reader.load_sheet("Actions").to_polars()
    assert actions.height == pl.read_csv(out / "actions.csv").height


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_actions_export_round_trip_with_a_bom_and_guarded_text(demo: Path) -> None:
    """`chs actions export` → a CSM edits it (keeping the BOM) → the next run applies it."""
    _hostile_demo(demo)
    first = DEMO_END - timedelta(days=7)
    config = demo / "chs.toml"
    weekly_flow(WeeklyParams(config_path=str(config), as_of=first))
    path, n = export_actions(load_config(config), None, None)
    raw = path.read_bytes()
    assert n > 0
    assert raw.startswith(BOM)
    edited = pl.read_csv(raw, infer_schema=False)
    target = edited["action_id"][0]
    note = "- called them, renewal on track"
    edited = edited.with_columns(
        pl.when(pl.col("action_id") == target)
        .then(pl.lit("done"))
        .otherwise("status")
        .alias("status"),
        pl.when(pl.col("action_id") == target)
        .then(pl.lit(f"'{note}"))  # as the writer guards text: the run must undo it
        .otherwise("note")
        .alias("note"),
    )
    path.write_bytes(BOM + edited.write_csv().encode())
    text = config.read_text()
    config.write_text(text + f'\n[sources.action_updates]\nuri = "{path}"\n')

    r = weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END))
    assert r.loop["updated"] >= 1
    listed = pl.read_csv(r.out / "actions.csv", infer_schema=False)
    assert target not in set(listed["action_id"])  # done: no longer listed
    with duckdb.connect(str(demo / "out" / "history.duckdb"), read_only=True) as con:
        notes = [row[0] for row in con.execute("SELECT note FROM action_events").fetchall()]
    assert note in notes
