"""What a write-back would change: each account's values, against what the target last accepted.

Values are compared as canonical JSON text (``38.5``, ``"at_risk"``, ``null``), so a value
that did not change since the last successful write-back is never sent again.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import polars as pl

from tasks.writeback.settings import WritebackConfig

CHANGE_SCHEMA = pl.Schema(
    {
        "account_id": pl.String(),
        "crm_id": pl.String(),
        "field": pl.String(),
        "property": pl.String(),
        "value": pl.String(),
        "previous": pl.String(),
    }
)


def target_label(wb: WritebackConfig) -> str:
    """Name the target in file names and the history log: hubspot, salesforce or postgresql."""
    return wb.kind


def _field_values(scores: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Return one column per writable field (``top_driver``: the measure costing most points)."""
    null = pl.lit(None)

    def col(name: str, dtype: Any) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in scores.columns else null.cast(dtype)

    crm = pl.col("crm_id").cast(pl.String) if "crm_id" in scores.columns else null
    return scores.select(
        "account_id",
        pl.coalesce(crm.str.strip_chars().replace("", None), "account_id").alias("crm_id"),
        col("score", pl.Float64).round(1).alias("score"),
        col("segment", pl.String).alias("segment"),
        col("top_drivers", pl.String).str.extract(r"^\s*([^;(]+?)\s*\(").alias("top_driver"),
        col("p_churn_90d", pl.Float64).round(4).alias("p_churn_90d"),
        pl.lit(as_of.isoformat()).alias("as_of"),
    )


def intended_values(scores: pl.DataFrame, wb: WritebackConfig, as_of: date) -> pl.DataFrame:
    """Return one row per account and configured field: its CRM id, property and JSON value."""
    wide = _field_values(scores, as_of)
    names = wb.property_names()
    rows = [
        {
            "account_id": r["account_id"],
            "crm_id": r["crm_id"],
            "field": f,
            "property": names[f],
            "value": json.dumps(r[f]),
        }
        for r in wide.iter_rows(named=True)
        for f in wb.fields
    ]
    schema = {k: v for k, v in CHANGE_SCHEMA.items() if k != "previous"}
    return pl.DataFrame(rows, schema=schema, orient="row")


def changed(intended: pl.DataFrame, last: pl.DataFrame) -> pl.DataFrame:
    """Keep the values that differ from the last successful write (or were never written)."""
    joined = intended.join(
        last.select("crm_id", "property", pl.col("value").alias("previous")),
        on=["crm_id", "property"],
        how="left",
    )
    return joined.filter(pl.col("previous").is_null() | (pl.col("previous") != pl.col("value")))


def by_record(changes: pl.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    """Group the changes into (crm_id, {property: value}) records, in a stable order."""
    records: dict[str, dict[str, Any]] = {}
    for r in changes.sort("crm_id", "property").iter_rows(named=True):
        records.setdefault(r["crm_id"], {})[r["property"]] = json.loads(r["value"])
    return list(records.items())
