"""The ``chs`` command line.

Exit status 0 on success, 1 when the pipeline ran and failed (e.g. a validation gate), 2 for a
usage or configuration error. Errors are one sentence without a traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Prefect reads these at import: no telemetry (there is no internet), and an ephemeral API.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

from tasks.errors import ChsError, ConfigError  # noqa: E402

if TYPE_CHECKING:
    from flows.server import TemporaryApi

DEFAULT_CONFIG = "chs.toml"


class _NoTracebacks(logging.Filter):
    """Drop exception details from Prefect's console logs; the CLI prints one sentence instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        msg = record.getMessage()
        if "Traceback (most recent call last)" in msg:
            record.msg, record.args = msg.split("Traceback (most recent call last)")[0].rstrip(), ()
        return True


def _quiet_prefect(debug: bool) -> None:
    if debug:
        return
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for h in logging.getLogger(name).handlers:
            h.addFilter(_NoTracebacks())


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


def parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    ap = argparse.ArgumentParser(
        prog="chs", description="Customer health scores: extract, validate, score, report."
    )
    ap.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo", help="make realistic sample data in demo/ and run the weekly flow on it"
    )
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--skip-run", action="store_true", help="only write the data and demo/chs.toml")
    p.add_argument("--dir", default="demo", help="where to write the demo (default: demo)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--events-per-account", type=int, default=200)
    p.add_argument(
        "--history-weeks", type=int, default=52, help="weeks of history to backfill before the run"
    )

    p = sub.add_parser("run", help="run the weekly flow for one as-of date")
    _config_arg(p)
    p.add_argument("--as-of", type=_date, default=None, help="ISO date (default: today)")
    p.add_argument(
        "--send",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="deliver the e-mails over SMTP",
    )
    _scale_args(p)

    p = sub.add_parser("backfill", help="compute every snapshot in a date range")
    _config_arg(p)
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--every", type=_every, default=7, help="step, e.g. 1w (default) or 1d")
    p.add_argument("--send", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument(
        "--emails",
        choices=("last", "all"),
        default="last",
        help="build the e-mails of the last date only (default) or of every date",
    )
    _scale_args(p)

    p = sub.add_parser("validate", help="read and validate every source; write nothing")
    _config_arg(p)
    p.add_argument("--as-of", type=_date, default=None)

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
    p.add_argument(
        "--as-of", type=_date, default=None, help="churn is known up to this date (default: today)"
    )
    p.add_argument("--horizon-days", type=int, default=90)

    p = sub.add_parser("init", help="write a commented starter config listing every key")
    p.add_argument(
        "path", nargs="?", default=DEFAULT_CONFIG, help="file or folder (default: chs.toml)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("clv", help="fit BG/NBD + Gamma-Gamma CLV on an orders file")
    p.add_argument("--orders", type=Path, required=True)
    p.add_argument("--calibration-end", type=_date, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--horizon-weeks", type=float, default=39.0)
    return ap


def _print(msg: str) -> None:
    print(msg, flush=True)


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``RunOptions`` that ``run`` and ``backfill`` take from the command line."""
    if args.dask and args.partitions == 1:
        raise ConfigError("--dask needs --partitions N with N > 1.")
    return {
        "config_path": args.config,
        "send": args.send,
        "partitions": args.partitions,
        "dask_address": args.dask,
    }


def cmd_run(args: argparse.Namespace) -> int:
    from flows.params import WeeklyParams
    from flows.weekly import weekly_flow

    params = WeeklyParams(as_of=args.as_of, **_run_options(args))
    t = time.perf_counter()
    r = weekly_flow(params)
    _summary(r, time.perf_counter() - t)
    return 0


def _summary(r: Any, seconds: float) -> None:
    seg = r.segments
    _print(
        f"{r.as_of}: scored {r.accounts:,} accounts — {seg.get('healthy', 0):,} healthy, {seg.get('neutral', 0):,} neutral, "
        f"{seg.get('at_risk', 0):,} at risk, {seg.get('insufficient_data', 0):,} with insufficient data; "
        f"{r.actions:,} actions; {seconds:.1f} s"
    )
    _print(f"  files: {r.out}")
    if r.sent:
        _print(f"  e-mails: {r.sent} sent, {r.pending} left in {r.out / 'outbox'}")
    elif r.emails:
        why = "" if r.smtp else " (CHS_SMTP_HOST is not set; `chs send` delivers them later)"
        _print(f"  e-mails: {r.emails} written to {r.out / 'outbox'}, not sent{why}")


def cmd_backfill(args: argparse.Namespace) -> int:
    from flows.backfill import backfill_flow
    from flows.params import BackfillParams

    if args.end < args.start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}.")
    params = BackfillParams(
        start=args.start,
        end=args.end,
        every_days=args.every,
        emails=args.emails,
        **_run_options(args),
    )
    t = time.perf_counter()
    results = backfill_flow(params)
    _print(
        f"backfilled {len(results)} dates from {args.start} to {args.end} in {time.perf_counter() - t:.1f} s"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from flows.validate_only import validate_sources

    report, failure = validate_sources(Path(args.config), args.as_of)
    for name, s in report.items():
        _print(
            f"{name:17} read {s['rows_read']:>10,}  accepted {s['rows_accepted']:>10,}  quarantined {s['rows_quarantined']:>8,}"
        )
        for f in s["failed_expectations"]:
            _print(
                f"{'':17}   {f['count']:>8,} × {f['column']}: {f.get('reason') or f['expectation']}"
            )
    if failure:
        raise failure
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from tasks.config import load_config
    from tasks.deliver import SmtpSettings, pending, send_outbox

    cfg = load_config(Path(args.config))
    smtp = SmtpSettings.from_env()
    if smtp is None:
        raise ConfigError("CHS_SMTP_HOST is not set, so there is no server to send to.")
    if args.as_of:
        days = [cfg.out_dir / args.as_of.isoformat()]
        if not (days[0] / "outbox").is_dir():
            raise ConfigError(f"There is no outbox in {days[0]}.")
    else:
        days = sorted(p.parent for p in cfg.out_dir.glob("????-??-??/outbox") if p.is_dir())
    total_sent = total_left = 0
    for d in days:
        waiting = len(pending(d / "outbox"))
        if not waiting:
            continue
        _print(f"{d.name}: sending {waiting} e-mails via {smtp.host}:{smtp.port}")
        report = send_outbox(d / "outbox", smtp)
        for error in report.errors:
            _print(f"  not delivered: {error}")
        _print(f"{d.name}: {report.sent} sent, {report.pending} still waiting in {d / 'outbox'}")
        total_sent, total_left = total_sent + report.sent, total_left + report.pending
    _print(f"sent {total_sent} e-mails; {total_left} still waiting")
    return 1 if total_left else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.deploy import serve

    serve(Path(args.config), args.cron, args.timezone)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import make_demo

    if args.accounts < 10:
        raise ConfigError("--accounts must be at least 10.")
    t = time.perf_counter()
    today = datetime.now(UTC).date()
    # the data ends yesterday: rows later today would be "after the run time" and quarantined
    config = make_demo(
        Path(args.dir), args.accounts, args.seed, today - timedelta(days=1), args.events_per_account
    )
    _print(
        f"demo data for {args.accounts:,} accounts and {config} written in {time.perf_counter() - t:.1f} s"
    )
    if args.skip_run:
        return 0
    from flows.backfill import backfill_flow
    from flows.params import BackfillParams, WeeklyParams
    from flows.weekly import weekly_flow

    if args.history_weeks > 0:
        start = today - timedelta(days=7 * args.history_weeks)
        backfill_flow(
            BackfillParams(config_path=str(config), start=start, end=today - timedelta(days=7))
        )
        _print(f"history backfilled for {args.history_weeks} weeks before {today}")
    if args.history_weeks >= 20:  # a back-test needs snapshots older than its 90-day horizon
        from flows.backtest import backtest_flow

        report = backtest_flow(config_path=str(config), as_of=today)
        _print(
            f"back-test: AUC {report['auc']} over {report['n_snapshots']} snapshots (see out/backtest.json)"
        )
    t = time.perf_counter()
    r = weekly_flow(WeeklyParams(config_path=str(config), as_of=today))
    _summary(r, time.perf_counter() - t)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from flows.backtest import backtest_flow
    from tasks.backtest import format_summary

    if args.horizon_days < 1:
        raise ConfigError("--horizon-days must be at least 1.")
    report = backtest_flow(
        config_path=args.config, as_of=args.as_of, horizon_days=args.horizon_days
    )
    _print(format_summary(report))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from flows.init import write_starter_config

    path = write_starter_config(Path(args.path), args.force)
    _print(f"wrote {path}: point [sources.*] at your data, then run `chs validate --config {path}`")
    return 0


def cmd_clv(args: argparse.Namespace) -> int:
    from flows.clv import clv_command, format_summary

    summary = clv_command(
        args.orders, args.calibration_end, args.out, horizon_weeks=args.horizon_weeks
    )
    _print(format_summary(summary))
    return 0


COMMANDS = {
    "run": cmd_run,
    "backfill": cmd_backfill,
    "validate": cmd_validate,
    "send": cmd_send,
    "serve": cmd_serve,
    "demo": cmd_demo,
    "clv": cmd_clv,
    "init": cmd_init,
    "backtest": cmd_backtest,
}


# the commands that run flows, and the modules they import before their first flow call
FLOW_MODULES = {
    "run": ("flows.weekly",),
    "backfill": ("flows.backfill",),
    "demo": ("flows.demo", "flows.backfill"),
    "backtest": ("flows.backtest",),
}


def _spawn_api(args: argparse.Namespace) -> TemporaryApi | None:
    """Start Prefect's temporary API server first thing when a flow will need one.

    In a fresh process (Prefect not imported yet) it starts before Prefect is imported, unless
    ``PREFECT_API_URL`` is in the environment; ``_use_api`` stops it again if Prefect's
    settings name a server after all (a profile).
    """
    if args.command not in FLOW_MODULES or getattr(args, "skip_run", False):
        return None
    from flows.server import TemporaryApi

    if "prefect" not in sys.modules and not os.environ.get("PREFECT_API_URL"):
        return TemporaryApi()
    return TemporaryApi() if TemporaryApi.needed() else None


def _use_api(args: argparse.Namespace, api: TemporaryApi | None) -> None:
    """Import the command's flows (and Great Expectations) while the server comes up, then
    point Prefect at it (see ``flows.server.TemporaryApi``)."""
    if api is None:
        return
    if not api.needed():
        api.stop()
        return
    if args.command in ("run", "backfill"):
        from tasks.validate import preload

        preload()  # Great Expectations loads here while this process waits for the server
    for name in FLOW_MODULES[args.command]:
        importlib.import_module(name)
    api.activate()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parser().parse_args(argv)
    api = _spawn_api(args)
    try:
        if args.command not in ("clv", "init"):
            from prefect.logging.configuration import setup_logging

            setup_logging()  # Prefect's handlers exist from here on, so they can be quietened
            _quiet_prefect(args.debug)
        _use_api(args, api)
        return COMMANDS[args.command](args)
    except ChsError as err:
        if args.debug:
            raise
        print(f"chs: error: {err}", file=sys.stderr)
        return err.exit_code
    except Exception as err:  # a bug, not a user error: still one sentence unless --debug
        if args.debug:
            raise
        print(
            f"chs: internal error: {type(err).__name__}: {err} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("chs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
