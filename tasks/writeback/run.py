"""``chs writeback``: read a date's scores, work out what changed, write the CSV, send, log.

Dry run by default: ``<out>/<D>/writeback/<target>.csv`` lists every value it would change.
With ``apply`` the values go to the target, and each one sent is logged in the history store
(``writeback_log``, status ``ok`` or ``failed`` with the reason), so the next run sends only
what changed since the last successful write-back, failed ones included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from tasks.config import Config
from tasks.csvfile import write_csv
from tasks.errors import ChsError, ConfigError
from tasks.history.connect import open_history
from tasks.history.schema import schema_of
from tasks.history.sql import SqlHistory
from tasks.http_retry import Retry
from tasks.sources.secrets import named_secret, resolve_uri
from tasks.writeback.changes import by_record, changed, intended_values, target_label
from tasks.writeback.settings import WritebackConfig
from tasks.writeback.targets import HUBSPOT_API, HubSpot, Outcome, Salesforce, Table, Target


@dataclass
class WritebackResult:
    """What one write-back did."""

    as_of: date
    target: str
    csv: Path
    accounts: int  # accounts with a change
    values: int  # changed values
    applied: bool
    written: int = 0  # accounts written
    failed: dict[str, str] = field(default_factory=dict)  # crm_id -> why


def scores_day(cfg: Config, as_of: date | None) -> Path:
    """Return the folder of the date's published scores (the latest date by default)."""
    if as_of is not None:
        day = cfg.out_dir / as_of.isoformat()
        if not (day / "scores.parquet").is_file():
            raise ConfigError(
                f"There are no scores for {as_of} in {cfg.out_dir}; run that date first."
            )
        return day
    days = sorted(p.parent for p in cfg.out_dir.glob("????-??-??/scores.parquet"))
    if not days:
        raise ConfigError(f"There are no scores in {cfg.out_dir}; run `chs run` first.")
    return days[-1]


def last_written(store: SqlHistory, target: str) -> pl.DataFrame:
    """Return the value each (crm_id, property) last had when the target accepted it."""
    cols = ["crm_id", "property", "value"]
    return store._frame(
        "select crm_id, property, value from (select crm_id, property, value, row_number() "
        "over (partition by crm_id, property order by written_at desc) as rn "
        "from writeback_log where target = ? and status = 'ok') as t where rn = 1",
        [target],
        schema_of("writeback_log", cols),
    )


def _log(store: SqlHistory, target: str, day: date, changes: pl.DataFrame, out: Outcome) -> None:
    failed = pl.DataFrame(
        {"crm_id": list(out.failed), "error": list(out.failed.values())},
        schema={"crm_id": pl.String, "error": pl.String},
    )
    rows = changes.join(failed, on="crm_id", how="left").select(
        pl.lit(target).alias("target"),
        pl.lit(day).alias("as_of"),
        "account_id",
        "crm_id",
        "property",
        "value",
        pl.lit(datetime.now(UTC).replace(tzinfo=None)).alias("written_at"),
        pl.when(pl.col("error").is_null())
        .then(pl.lit("ok"))
        .otherwise(pl.lit("failed"))
        .alias("status"),
        "error",
    )
    with store._transaction(day):
        store._insert("writeback_log", rows.cast(schema_of("writeback_log")))


def _token(wb: WritebackConfig) -> str:
    token = named_secret("[writeback]", wb.token_env, wb.token_secret)
    if not token:
        raise ConfigError(
            f"[writeback] token_env names {wb.token_env}, which is not set: the {wb.kind} "
            "target needs a token (see the README on CRM write-back)."
        )
    return token.strip()


def make_target(wb: WritebackConfig, intended: pl.DataFrame, retry: Retry) -> Target:
    """Build the configured target with its credentials."""
    if wb.kind == "hubspot":
        return HubSpot(_token(wb), wb.base_url or HUBSPOT_API, retry)
    if wb.kind == "salesforce":
        return Salesforce(_token(wb), wb.base_url or "", wb.api_version, retry=retry)
    ids = dict(zip(intended["crm_id"], intended["account_id"], strict=True))
    url = resolve_uri(wb.target)
    return Table(url, wb, ids, (url,))


def _records(wb: WritebackConfig, todo: pl.DataFrame, intended: pl.DataFrame) -> pl.DataFrame:
    """Return the values to send: the changed ones, or for a table every value of a changed row."""
    if wb.kind != "postgresql":
        return todo
    ids = todo["crm_id"].unique().implode()
    return intended.filter(pl.col("crm_id").is_in(ids))


def writeback(
    cfg: Config, as_of: date | None = None, apply: bool = False, retry: Retry | None = None
) -> WritebackResult:
    """Work out the changed values of a date's scores; write them to the CSV; send with apply."""
    wb = cfg.writeback
    if wb is None:
        raise ConfigError(
            "[writeback] is not configured: set target (hubspot, salesforce or a database URL)."
        )
    folder = scores_day(cfg, as_of)
    day = date.fromisoformat(folder.name)
    intended = intended_values(pl.read_parquet(folder / "scores.parquet"), wb, day)
    label = target_label(wb)
    store = open_history(cfg)
    try:
        if not isinstance(store, SqlHistory):  # pragma: no cover - both stores are SQL
            raise ChsError("The history store cannot keep a write-back log.")
        todo = changed(intended, last_written(store, label))
        csv = folder / "writeback" / f"{label}.csv"
        result = WritebackResult(day, label, csv, todo["crm_id"].n_unique(), todo.height, apply)
        out = Outcome()
        if apply and not todo.is_empty():
            sent = _records(wb, todo, intended)
            out = make_target(wb, intended, retry or Retry()).send(by_record(sent))
            _log(store, label, day, sent, out)
            result.written, result.failed = len(out.written), out.failed
    finally:
        store.close()
    _write_csv(csv, todo, out, apply, cfg.output.csv_bom)
    return result


def _write_csv(csv: Path, todo: pl.DataFrame, out: Outcome, apply: bool, bom: bool) -> None:
    csv.parent.mkdir(parents=True, exist_ok=True)
    failed = {k: f"failed: {v}" for k, v in out.failed.items()}
    status = (
        pl.col("crm_id").replace_strict(failed, default="sent", return_dtype=pl.String)
        if apply
        else pl.lit("dry run")
    )
    table = todo.with_columns(status.alias("result"))
    write_csv(table, csv, bom)
