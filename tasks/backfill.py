"""One pass over the data for many as-of dates (validated span -> what each date's run sees).

A backfill reads and validates the sources once for the whole span, from the first date's
look-back to the last date. Each date then sees exactly the rows a run of that date alone
would have read: the same cut-off filter, applied to the validated rows, with the failed
expectations recounted over them. Validation is row by row except for uniqueness, so the
one difference is a key duplicated across dates: the span quarantines both copies, while a
run before the second copy arrived accepts the first. (The other datasets' rows are checked
against the accounts of the last date, so an account that exists only later, or whose only
record has no exchange rate yet on an early date, is not scored on that date while its
orders still count as accepted in that date's validation.json.)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl

from tasks.config import Config
from tasks.currency import accounts_on, rate_table
from tasks.features.windows import hashed_ids
from tasks.schemas import DATASETS, Dataset
from tasks.sources.latest import not_after, pick_records
from tasks.sources.plan import Window, cutoff_filter, lookback_days
from tasks.validate import CAST, ValidatedDataset


@dataclass(frozen=True)
class SpanWindow(Window):
    """The window of every date from ``first`` to ``as_of``: look-backs count from ``first``."""

    first: date | None = None

    def since(self, days: int) -> datetime:
        """Return the start of a ``days``-day look-back from ``first`` (else ``as_of``)."""
        start = self.first or self.as_of
        return datetime.combine(start - timedelta(days=days - 1), time.min)


def dates_between(start: date, end: date, every_days: int) -> list[date]:
    """Return start, start + step, ... up to and including end."""
    if every_days < 1:
        raise ValueError("every_days must be at least 1")
    return [start + timedelta(days=i) for i in range(0, (end - start).days + 1, every_days)]


def _failed_on(failed: dict[str, Any], quarantined: pl.DataFrame) -> int:
    """Count the quarantined rows that failed one expectation, from their reasons."""
    col = re.escape(str(failed["column"]))
    if failed["expectation"] == CAST:
        hit = pl.col("reason").str.contains(f"(?:^|; ){col}: '")
    else:
        hit = pl.col("reason").str.contains(f"{failed['column']}: {failed['reason']}", literal=True)
    return int(quarantined.select(hit.sum()).item())


def as_of_slice(
    validated: dict[str, ValidatedDataset], as_of: date, run_time: datetime, cfg: Config
) -> dict[str, ValidatedDataset]:
    """Return the validated rows (and counts) a run of ``as_of`` alone would have.

    A change log's (``latest_by``) record of each key is picked again for the date: the
    latest of its accepted rows up to then. The accounts, validated as exported, get the
    date's ARR: converted at the rate valid on it (``tasks.currency.accounts_on``).
    """
    window = Window(as_of, run_time)
    out = {}
    for name, v in validated.items():
        ds = DATASETS[name]
        if ds.time_column is None and v.superseded is None:
            out[name] = v
            continue
        back = lookback_days(name, cfg)

        def cut(df: pl.DataFrame, ds: Dataset = ds, back: int | None = back) -> pl.DataFrame:
            return not_after(cutoff_filter(df, ds, window, back), window.end)

        quarantined = cut(v.quarantined)
        failed = [{**f, "count": _failed_on(f, quarantined)} for f in v.failed]
        accepted, superseded = cut(v.accepted), v.superseded
        if superseded is not None:
            pool = pl.concat([accepted, cut(superseded)], how="vertical_relaxed")
            accepted, superseded = pick_records(pool, ds)
        out[name] = ValidatedDataset(
            name=name,
            accepted=accepted,
            quarantined=quarantined,
            failed=[f for f in failed if f["count"]],
            engine=v.engine,
            superseded=superseded,
        )
    if "accounts" in out:
        fx = out.get("fx_rates")
        rates = rate_table(fx.accepted if fx is not None else None)
        out["accounts"] = accounts_on(out["accounts"], rates, cfg.currency.home, as_of)
    return out


def accounts_of_date(features: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    """Give one date's features of a pass that date's accounts: their ARR at the date's rate.

    A pass computes the features of its dates from the accounts as exported; ``accounts`` are
    the date's slice (``as_of_slice``), whose ARR is in the home currency at the date's rate
    and which leaves out an account whose currency has no rate yet, as a run of the date does.
    """
    cols = [c for c in ("arr", "currency") if c in features.columns and c in accounts.columns]
    if not cols:
        return features
    return (
        features.drop(cols)
        .join(
            accounts.select("account_id", *cols),
            on="account_id",
            how="inner",
            maintain_order="left",
        )
        .select(features.columns)
    )


# datasets whose rows a backfill's dates only count (validation.json), apart from the features
COUNTED_ONLY = ("usage_events",)


def counted_only(validated: dict[str, ValidatedDataset]) -> dict[str, ValidatedDataset]:
    """Keep only the time column of the accepted rows of the datasets later steps only count.

    Apart from the features, a backfill's dates read product events only to count what a run
    of the date alone would have accepted (validation.json): slicing the time column alone
    does not copy 19 million rows of ids and names per date at 100k accounts.
    """
    out = dict(validated)
    for name in COUNTED_ONLY:
        v = validated.get(name)
        column = DATASETS[name].time_column
        if v is not None and column is not None:
            out[name] = replace(v, accepted=v.accepted.select(column))
    return out


def hashed_events(validated: dict[str, ValidatedDataset]) -> dict[str, ValidatedDataset]:
    """Hash the accepted events' user and feature names once for all the passes of a backfill.

    See ``tasks.features.hashed_ids``: the features are the same, 19M rows at 100k accounts
    take less memory, and no pass hashes them again.
    """
    v = validated.get("usage_events")
    if v is None:
        return validated
    return validated | {
        "usage_events": replace(v, accepted=hashed_ids(v.accepted.lazy()).collect())
    }


def batch_id(
    cfg: Config, code_version: str, dates: list[date], validated: dict[str, ValidatedDataset]
) -> str:
    """Fingerprint a backfill (config, code, dates and data): a re-run with the same one resumes."""
    h = hashlib.sha256(f"{cfg.fingerprint()}|{code_version}|{dates}".encode())
    for name in sorted(validated):
        v = validated[name]
        for frame in (v.accepted, v.quarantined):
            h.update(f"{name}:{frame.height}:".encode())
            h.update(frame.hash_rows().to_numpy().tobytes())
    return h.hexdigest()[:16]
