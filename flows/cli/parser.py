"""The ``chs`` command line's arguments: one sub-command per job, dates and configs checked."""

from __future__ import annotations

import argparse
from datetime import date
from importlib import metadata
from pathlib import Path

DEFAULT_CONFIG = "chs.toml"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date (YYYY-MM-DD)") from None


def _every(text: str) -> int:
    units = {"d": 1, "w": 7}
    try:
        n, unit = int(text[:-1]), text[-1]
        return n * units[unit]
    except (ValueError, KeyError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a step like 1w or 7d") from None


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help="TOML config file (default: chs.toml)")


def _partitions(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1024:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1024")
    return n


def _scale_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--partitions",
        type=_partitions,
        default=1,
        help="compute features in N account partitions on Dask (default 1: in this process)",
    )
    p.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler for the partitions, e.g. tcp://host:8786 (default: a local cluster)",
    )


def _version() -> str:
    """Return the installed package's version (its metadata), or why there is none."""
    try:
        return metadata.version("customer-health-score")
    except metadata.PackageNotFoundError:
        return "(not installed: run `make .venv/.installed`)"


def _verbose_arg(p: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``--verbose`` before or after the sub-command (after it, SUPPRESS keeps the one before)."""
    p.add_argument(
        "--verbose",
        action="store_true",
        default=default,
        help="also show Prefect's own log lines (each task's and flow's state)",
    )


def parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    ap = argparse.ArgumentParser(
        prog="chs", description="Customer health scores: extract, validate, score, report."
    )
    ap.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    ap.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    _verbose_arg(ap, False)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo", help="make realistic sample data in demo/ and run the weekly flow on it"
    )
    p.add_argument(
        "--accounts",
        type=int,
        default=2000,
        help="accounts to generate (default 2000, at least 10)",
    )
    p.add_argument("--skip-run", action="store_true", help="only write the data and demo/chs.toml")
    p.add_argument("--dir", default="demo", help="where to write the demo (default: demo)")
    p.add_argument(
        "--seed", type=int, default=7, help="random seed: the same seed, the same data (default 7)"
    )
    p.add_argument(
        "--events-per-account",
        type=int,
        default=2500,
        help="product events per account over the demo's year (default 2500)",
    )
    p.add_argument(
        "--history-weeks", type=int, default=52, help="weeks of history to backfill before the run"
    )
    _verbose_arg(p)

    p = sub.add_parser("run", help="run the weekly flow for one as-of date")
    _config_arg(p)
    _verbose_arg(p)
    p.add_argument("--as-of", type=_date, default=None, help="ISO date (default: today)")
    p.add_argument(
        "--send",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="deliver the e-mails over SMTP",
    )
    _scale_args(p)
    p.add_argument(
        "--pages",
        choices=("listed", "all"),
        default="listed",
        help="account pages for the accounts at risk or with an open action (default), or all",
    )

    p = sub.add_parser("backfill", help="compute every snapshot in a date range")
    _config_arg(p)
    _verbose_arg(p)
    p.add_argument("--start", type=_date, required=True, help="first as-of date (ISO)")
    p.add_argument("--end", type=_date, required=True, help="last as-of date (ISO, inclusive)")
    p.add_argument("--every", type=_every, default=7, help="step, e.g. 1w (default) or 1d")
    p.add_argument(
        "--send",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="deliver the e-mails built over SMTP (default: keep them in the outbox)",
    )
    p.add_argument(
        "--emails",
        choices=("last", "all"),
        default="last",
        help="build the e-mails of the last date only (default) or of every date",
    )
    _scale_args(p)

    p = sub.add_parser("validate", help="read and validate every source; write nothing")
    _config_arg(p)
    p.add_argument("--as-of", type=_date, default=None, help="ISO date (default: today)")

    p = sub.add_parser("serve", help="serve the weekly deployment on its cron schedule")
    _config_arg(p)
    p.add_argument("--cron", default=None, help="override [schedule] cron (default 0 6 * * 1)")
    p.add_argument("--timezone", default=None, help="override [schedule] timezone (default UTC)")

    p = sub.add_parser("send", help="deliver what is waiting in an outbox")
    _config_arg(p)
    p.add_argument(
        "--as-of",
        type=_date,
        default=None,
        help="the run whose outbox to send (default: every run)",
    )

    p = sub.add_parser(
        "backtest", help="measure how well the score predicted churn, and fit learned weights"
    )
    _config_arg(p)
    _verbose_arg(p)
    p.add_argument(
        "--as-of", type=_date, default=None, help="churn is known up to this date (default: today)"
    )
    p.add_argument(
        "--horizon-days", type=int, default=90, help="days after a snapshot that count as churn"
    )
    p.add_argument(
        "--compare",
        default=None,
        metavar="OTHER.toml",
        help="also score the stored history under this config and compare (backtest_compare.json)",
    )

    p = sub.add_parser("actions", help="work with the actions: export the open ones for editing")
    acts = p.add_subparsers(dest="actions_command", required=True)
    e = acts.add_parser("export", help="write the open actions as a CSV to edit and feed back")
    _config_arg(e)
    e.add_argument("--as-of", type=_date, default=None, help="the run to export (default: latest)")
    e.add_argument(
        "--out", type=Path, default=None, help="file (default: <out>/action-updates-D.csv)"
    )

    p = sub.add_parser(
        "writeback", help="write the scores' changed values back to the CRM ([writeback])"
    )
    _config_arg(p)
    p.add_argument("--as-of", type=_date, default=None, help="the run to write (default: latest)")
    p.add_argument(
        "--apply",
        action="store_true",
        help="send the changes (default: only write <out>/<D>/writeback/<target>.csv)",
    )

    p = sub.add_parser("init", help="write a commented starter config listing every key")
    p.add_argument(
        "path", nargs="?", default=DEFAULT_CONFIG, help="file or folder (default: chs.toml)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("clv", help="fit BG/NBD + Gamma-Gamma CLV on an orders file")
    p.add_argument("--orders", type=Path, required=True, help="orders file (CSV, Parquet, JSONL)")
    p.add_argument(
        "--calibration-end",
        type=_date,
        required=True,
        help="the models learn from orders up to this date; later ones are the holdout",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the parameters and CSV")
    p.add_argument(
        "--horizon-weeks", type=float, default=39.0, help="weeks the CLV looks ahead (default 39)"
    )
    return ap
