"""Validate each dataset with its Great Expectations suite and quarantine failing rows.

Suites live in ``expectations/<dataset>.json``; each expectation carries a human reason in
its ``meta``. Some values are only known at run time and are filled in from ``meta``:
``value_set_from`` (the accepted account ids), ``max_value_from`` (the run time) and
``scale_from`` (a survey scale from the config).

GX runs on a pandas copy of each dataset up to ``[validation] gx_max_rows``; larger datasets
(product events at scale) are checked by the same suite translated into Polars expressions,
which a test keeps in agreement with GX row for row. Cross-dataset expectations (a
``value_set_from`` such as "every account_id is a known account") always run as their Polars
translation: GX re-serialises the value set about a hundred times per expectation, which costs
seconds per dataset at 20,000 accounts.

Over 400 lines on purpose: the GX runner and its Polars translation stay side by side, so a
change to one is seen next to the other (a test keeps them in agreement row for row).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

import polars as pl

from tasks.config import Config
from tasks.errors import ConfigError, ValidationGateError
from tasks.schemas import DATASETS
from tasks.sources.latest import LATEST, pick_records, version_key
from tasks.sources.plan import REASON, ROW
from tasks.sources.secrets import describe_source

if TYPE_CHECKING:
    import great_expectations as gx


_preloading = False


def preload() -> None:
    """Import Great Expectations (~5 s) in a background thread, once per process.

    The flows call it first, so the import overlaps reading history and the sources (I/O and
    Polars, which release the GIL); the first use waits for it. ``chs run`` and ``chs
    backfill`` call it earlier, while Prefect's temporary API server starts in its own process
    (``flows.server.TemporaryApi``).
    """
    global _preloading
    if _preloading:
        return
    _preloading = True
    # GX (through altair) and scikit-learn (the flows' calibration) both import narwhals, whose
    # modules import each other: imported by this thread and the main one at once, they
    # deadlock (_DeadlockError on narwhals.stable.v1), so it is imported here first
    import narwhals.stable.v1  # noqa: F401
    import pandas  # noqa: F401  # GX's largest shared dependency: imported once, here

    def load() -> None:
        with contextlib.suppress(Exception):  # the import at first use reports a failure
            import great_expectations  # noqa: F401

    threading.Thread(target=load, name="preload-gx", daemon=True).start()


EXPECTATIONS_DIR = files("expectations")  # package data: the same in a checkout and a wheel
CAST = "cast_to_schema"  # the pseudo-expectation for values that could not be typed
_CONDITION = re.compile(r'^\s*(\w+)\s*(==|!=)\s*"([^"]*)"\s*$')


@dataclass
class ValidatedDataset:
    """What validation made of one dataset: accepted rows, quarantined rows, and the counts."""

    name: str
    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    failed: list[dict[str, Any]] = field(default_factory=list)
    engine: str = "great_expectations"
    # a change log's (latest_by) accepted rows that a later row of their key replaced
    superseded: pl.DataFrame | None = None

    @property
    def rows_superseded(self) -> int:
        """Return how many accepted rows are older versions of a change log's records."""
        return 0 if self.superseded is None else self.superseded.height

    def summary(self) -> dict[str, Any]:
        """Return the dataset's row counts, failed expectations and validation engine."""
        accepted = self.accepted.height + self.rows_superseded  # history is valid, not bad
        return {
            "rows_read": accepted + self.quarantined.height,
            "rows_accepted": accepted,
            "rows_quarantined": self.quarantined.height,
            "rows_superseded": self.rows_superseded,
            "failed_expectations": self.failed,
            "engine": self.engine,
        }


def load_suite_json(dataset: str, directory: Traversable = EXPECTATIONS_DIR) -> dict[str, Any]:
    """Read a suite file; a missing or broken file is a configuration error."""
    path = directory / f"{dataset}.json"
    try:
        suite: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Expectation suite {path} does not exist.") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"Expectation suite {path} is not valid JSON: {err}.") from None
    return suite


def build_suite(suite_json: dict[str, Any]) -> gx.ExpectationSuite:
    """Build a GX suite, failing loudly on any invalid entry (GX would drop it silently)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    _gx_batch_definition()  # GX builds expectation objects only inside an active context
    suite = gx.ExpectationSuite(name=suite_json["name"])
    for i, entry in enumerate(suite_json["expectations"]):
        if not entry.get("meta", {}).get("reason"):
            raise ConfigError(f"Expectation {i} of suite {suite_json['name']} has no meta.reason.")
        try:
            # add_expectation_configuration would replace entries that share a domain (two
            # ranges on one column under different row conditions); add_expectation keeps both.
            suite.add_expectation(ExpectationConfiguration(**entry).to_domain_obj())
        except Exception as err:  # GX raises many types here; all mean the entry is invalid
            raise ConfigError(
                f"Expectation {i} of suite {suite_json['name']} is invalid: {err}."
            ) from None
    return suite


def resolve_suite(
    suite_json: dict[str, Any], cfg: Config, account_ids: list[str] | None, run_time: datetime
) -> dict[str, Any]:
    """Fill in the run-time values of a suite (account ids, run time, survey scales)."""
    out = copy.deepcopy(suite_json)
    kept = []
    for entry in out["expectations"]:
        meta, kw = entry.get("meta", {}), entry["kwargs"]
        if meta.get("value_set_from") == "accounts.account_id":
            if account_ids is None:
                continue  # the accounts dataset itself
            kw["value_set"] = account_ids
        if meta.get("max_value_from") == "run_time":
            kw["max_value"] = run_time.isoformat()
        scale = meta.get("scale_from")
        if scale == "rating":  # feedback ratings: [text] rating_scale
            kw["min_value"], kw["max_value"] = cfg.text.rating_scale
        elif scale:
            s = cfg.surveys.get(scale)
            if s is None:
                raise ConfigError(f"[surveys] has no scale for {scale!r}, which a suite needs.")
            kw["min_value"], kw["max_value"] = s.min, s.max
        kept.append(entry)
    out["expectations"] = kept
    return out


@cache
def _gx_batch_definition() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas("chs")
    return source.add_dataframe_asset("dataset").add_batch_definition_whole_dataframe("whole")


def _failure_column(kwargs: dict[str, Any]) -> str:
    return str(kwargs.get("column") or f"{kwargs.get('column_A')},{kwargs.get('column_B')}")


def _cross_dataset(entry: dict[str, Any]) -> bool:
    return "value_set_from" in entry.get("meta", {})


def _selected(
    suite_json: dict[str, Any], df: pl.DataFrame, only: set[int] | None
) -> list[tuple[int, dict[str, Any]]]:
    present = set(df.columns)
    return [
        (i, e)
        for i, e in enumerate(suite_json["expectations"])
        if _columns_of(e["kwargs"]) <= present and (only is None or i in only)
    ]


def run_gx(
    df: pl.DataFrame, suite_json: dict[str, Any], only: set[int] | None = None
) -> dict[int, list[int]]:
    """Validate ``df`` with GX; return the failing expectations (by index) with their rows."""
    # meta["index"] maps each GX result back to its entry in the suite file
    usable = [
        {**e, "meta": {**e.get("meta", {}), "index": i}} for i, e in _selected(suite_json, df, only)
    ]
    if not usable:
        return {}
    suite = build_suite({**suite_json, "expectations": usable})
    pdf = _to_pandas(df)
    batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": pdf})
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]}
    )
    failures: dict[int, list[int]] = {}
    for res in result.results:
        info = res.exception_info or {}
        if info.get("raised_exception"):
            raise ValidationGateError(
                f"Expectation {res.expectation_config.type} on {suite_json['name']} could not run: "
                f"{info.get('exception_message')}."
            )
        if res.success:
            continue
        rows = [int(r[ROW]) for r in res.result.get("unexpected_index_list") or []]
        if not rows:  # a column- or table-level failure: no row to quarantine, so stop
            entry = suite_json["expectations"][int(res.expectation_config.meta["index"])]
            raise ValidationGateError(
                f"{suite_json['name']}: column {_failure_column(entry['kwargs'])} failed "
                f"{entry['type']} as a whole ({entry['meta']['reason']})."
            )
        failures[int(res.expectation_config.meta["index"])] = rows
    return failures


def _to_pandas(df: pl.DataFrame) -> Any:
    """Convert for GX, which compares only nanosecond date-times vectorised (others row by row)."""
    lo, hi = datetime(1677, 9, 22), datetime(2262, 4, 11)  # the nanosecond range
    ns = [
        c
        for c, t in df.schema.items()
        if isinstance(t, pl.Datetime)
        and df.select(pl.col(c).is_between(lo, hi) | pl.col(c).is_null()).to_series().all()
    ]
    return df.with_columns(pl.col(ns).cast(pl.Datetime("ns"))).to_pandas()


def _columns_of(kwargs: dict[str, Any]) -> set[str]:
    return {kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs}


def _condition(kwargs: dict[str, Any]) -> pl.Expr:
    cond = kwargs.get("row_condition")
    if not cond:
        return pl.lit(True)
    m = _CONDITION.match(cond)
    if not m:
        raise ConfigError(f'Row condition {cond!r} is not of the form column=="value".')
    col, op, value = m.groups()
    c = pl.col(col)
    # pandas compares null != "x" as True; eq_missing/ne_missing keep that meaning
    return c.eq_missing(value) if op == "==" else c.ne_missing(value)


def _bound(c: pl.Expr, value: Any, dtype: pl.DataType) -> tuple[pl.Expr, Any]:
    """Return the column and bound to compare (pandas compares dates as midnight datetimes)."""
    if isinstance(value, str) and (isinstance(dtype, pl.Datetime) or dtype == pl.Date):
        c = c.cast(pl.Datetime("us")) if dtype == pl.Date else c
        return c, datetime.fromisoformat(value)
    return c, value


def polars_unexpected(entry: dict[str, Any], schema: pl.Schema) -> pl.Expr | None:
    """Translate one expectation into a Polars predicate that is true on unexpected rows."""
    t, kw = entry["type"], entry["kwargs"]
    if t == "expect_column_to_exist":
        return None
    if t == "expect_column_values_to_not_be_null":
        return pl.col(kw["column"]).is_null()
    c = pl.col(kw.get("column", ""))
    if t == "expect_column_values_to_be_unique":
        return c.is_not_null() & c.is_duplicated()
    if t == "expect_column_values_to_be_in_set":
        return c.is_not_null() & ~c.is_in(
            pl.Series(kw["value_set"], dtype=schema[kw["column"]]).implode()
        )
    if t == "expect_column_values_to_be_between":
        dtype = schema[kw["column"]]
        bad = pl.lit(False)
        lo, hi = kw.get("min_value"), kw.get("max_value")
        if lo is not None:
            x, b = _bound(c, lo, dtype)
            bad = bad | ((x <= b) if kw.get("strict_min") else (x < b))
        if hi is not None:
            x, b = _bound(c, hi, dtype)
            bad = bad | ((x >= b) if kw.get("strict_max") else (x > b))
        return c.is_not_null() & bad & _condition(kw)
    if t == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = pl.col(kw["column_A"]), pl.col(kw["column_B"])
        worse = (a < b) if kw.get("or_equal") else (a <= b)
        return a.is_not_null() & b.is_not_null() & worse
    raise ConfigError(
        f"Expectation type {t} has no Polars translation; keep the dataset under gx_max_rows."
    )


def run_polars(
    df: pl.DataFrame, suite_json: dict[str, Any], only: set[int] | None = None
) -> dict[int, list[int]]:
    """Validate ``df`` with the suite translated to Polars; same contract as ``run_gx``."""
    exprs: dict[int, pl.Expr] = {}
    for i, entry in _selected(suite_json, df, only):
        pred = polars_unexpected(entry, df.schema)
        if pred is not None:
            exprs[i] = pred
    if not exprs:
        return {}
    flags = df.select(pl.col(ROW), *[e.alias(f"_x{i}") for i, e in exprs.items()])
    out: dict[int, list[int]] = {}
    for i in exprs:
        rows = flags.filter(pl.col(f"_x{i}"))[ROW].to_list()
        if rows:
            out[i] = rows
    return out


def cast_failures(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Return one failed expectation per column of the rows' cast (and currency) reasons."""
    # each reason reads "<column>: '<value>' is not <type>"; count them per column
    bad = df.filter(pl.col(REASON).is_not_null()).select(pl.col(REASON).str.split("; ").alias("r"))
    parts = bad.explode("r").select(
        pl.col("r").str.extract(r"^([^:]+):").alias("c"),
        pl.col("r").str.extract(r"' is (not .*)$").alias("why"),
    )
    counts = parts.group_by("c").agg(pl.len(), pl.col("why").first()).sort("c")
    return [
        {"expectation": CAST, "column": r["c"], "count": r["len"], "reason": f"values {r['why']}"}
        for r in counts.iter_rows(named=True)
    ]


def validate_dataset(
    df: pl.DataFrame,
    dataset: str,
    cfg: Config,
    run_time: datetime,
    account_ids: list[str] | None = None,
    keep_rows: bool = False,
) -> ValidatedDataset:
    """Split a typed dataset into accepted and quarantined rows, with a reason for each.

    With ``keep_rows`` the accepted rows keep their source row (``ROW``): the accounts, which
    each date's exchange rate may still quarantine (``tasks.currency.accounts_on``).
    """
    suite = resolve_suite(load_suite_json(dataset), cfg, account_ids, run_time)
    cast_ok = df[REASON].null_count() == df.height
    typed_ok = df if cast_ok else df.filter(pl.col(REASON).is_null())
    use_gx = typed_ok.height <= cfg.validation.gx_max_rows
    every = set(range(len(suite["expectations"])))
    versions = _versioned_keys(suite, dataset, df)  # a change log: unique per key and version
    if use_gx:
        cross = {i for i, e in enumerate(suite["expectations"]) if _cross_dataset(e)}
        failures = {
            **run_gx(typed_ok, suite, every - cross - versions),
            **run_polars(typed_ok, suite, cross - versions),
        }
    else:
        failures = run_polars(typed_ok, suite, every - versions)
    failures.update(_version_duplicates(typed_ok, dataset, versions))
    failed = cast_failures(df)
    reasons: list[pl.DataFrame] = []
    for i, rows in sorted(failures.items()):
        entry = suite["expectations"][i]
        col = _failure_column(entry["kwargs"])
        failed.append(
            {
                "expectation": entry["type"],
                "column": col,
                "count": len(rows),
                "reason": entry["meta"]["reason"],
            }
        )
        reasons.append(
            pl.DataFrame(
                {ROW: rows, "r": [f"{col}: {entry['meta']['reason']}"] * len(rows)},
                schema={ROW: pl.Int64, "r": pl.String},
            )
        )
    if cast_ok and not reasons:
        # every row passed: the accepted rows are the typed frame itself, not a copy made by
        # a join and a filter (at a million accounts, gigabytes of events held twice)
        accepted = df.drop(REASON, *([] if keep_rows else [ROW]))
        quarantined = df.clear().rename({REASON: "reason", ROW: "source_row"})
    else:
        accepted, quarantined = _split(df, reasons, keep_rows)
    records, superseded = pick_records(accepted, DATASETS[dataset])
    return ValidatedDataset(
        name=dataset,
        accepted=records,
        quarantined=quarantined,
        failed=failed,
        engine="great_expectations" if use_gx else "polars (suite translated)",
        superseded=superseded if LATEST in df.columns else None,
    )


def _split(
    df: pl.DataFrame, reasons: list[pl.DataFrame], keep_rows: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Mark each row with its reasons; return the accepted (with ``ROW`` when ``keep_rows``)
    and the quarantined rows.
    """
    by_row = (
        pl.concat(reasons).group_by(ROW).agg(pl.col("r").str.join("; "))
        if reasons
        else pl.DataFrame(schema={ROW: pl.Int64, "r": pl.String})
    )
    marked = (
        df.join(by_row, on=ROW, how="left")
        .with_columns(pl.concat_str([REASON, "r"], separator="; ", ignore_nulls=True).alias(REASON))
        .with_columns(
            pl.when(pl.col(REASON) == "").then(None).otherwise(pl.col(REASON)).alias(REASON)
        )
        .drop("r")
    )
    accepted = marked.filter(pl.col(REASON).is_null()).drop(REASON, *([] if keep_rows else [ROW]))
    quarantined = marked.filter(pl.col(REASON).is_not_null()).rename(
        {REASON: "reason", ROW: "source_row"}
    )
    return accepted, quarantined


def _versioned_keys(suite: dict[str, Any], dataset: str, df: pl.DataFrame) -> set[int]:
    """Return the suite's uniqueness checks on the key of a change log (``latest_by``)."""
    key = DATASETS[dataset].key
    if LATEST not in df.columns or key is None:
        return set()
    return {
        i
        for i, e in enumerate(suite["expectations"])
        if e["type"] == "expect_column_values_to_be_unique" and e["kwargs"].get("column") == key
    }


def _version_duplicates(df: pl.DataFrame, dataset: str, checks: set[int]) -> dict[int, list[int]]:
    """Rows of a change log that share both key and ``latest_by`` value: none can be the record."""
    if not checks:
        return {}
    ds = DATASETS[dataset]
    dup = pl.col(ds.key or "").is_not_null() & version_key(ds).is_duplicated()
    rows = df.filter(dup)[ROW].to_list()
    return {i: rows for i in checks} if rows else {}


def gate(v: ValidatedDataset, cfg: Config) -> None:
    """Stop the run when a dataset is mostly invalid or no account survived validation."""
    src = cfg.sources.get(v.name)
    what = describe_source(v.name, src) if src else v.name
    read, bad = v.accepted.height + v.rows_superseded + v.quarantined.height, v.quarantined.height
    if v.name == "accounts" and read == 0:
        raise ValidationGateError(f"{what} has no rows: there are no accounts to score.")
    worst = max(v.failed, key=lambda f: f["count"], default=None)
    why = f"most often column {worst['column']}: {worst['reason']}" if worst else ""
    if v.name == "accounts" and v.accepted.height == 0:
        raise ValidationGateError(
            f"{what}: none of its {read:,} rows passed validation, so there is nothing to "
            f"score; {why}."
        )
    limit = cfg.validation.max_invalid_share
    if read and bad / read > limit:
        raise ValidationGateError(
            f"{what}: {bad:,} of {read:,} rows ({bad / read:.0%}) failed validation, above the "
            f"{limit:.0%} allowed by [validation] max_invalid_share; {why}."
        )


def check_suite_columns(dataset: str) -> set[str]:
    """Return the columns a suite names (tests compare them with the Polars schema)."""
    cols: set[str] = set()
    for e in load_suite_json(dataset)["expectations"]:
        cols |= _columns_of(e["kwargs"])
    return cols
