"""What each ``chs`` sub-command does: load the config, run its flow or job, print its summary.

Flows are imported inside the commands, so ``chs init`` and ``chs clv`` never import Prefect.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tasks.clock import utc_today
from tasks.errors import ConfigError  # noqa: E402


def _print(msg: str) -> None:
    print(msg, flush=True)


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``RunOptions`` fields that ``run`` and ``backfill`` take from the command line."""
    if args.dask and args.partitions == 1:
        raise ConfigError("--dask needs --partitions N with N > 1.")
    return {
        "config_path": args.config,
        "send": args.send,
        "partitions": args.partitions,
        "dask_address": args.dask,
    }


def cmd_run(args: argparse.Namespace) -> int:
    """Run the weekly flow for one date and print what it wrote."""
    from flows.params import WeeklyParams
    from flows.weekly import weekly_flow

    params = WeeklyParams(as_of=args.as_of, pages=args.pages, **_run_options(args))
    t = time.perf_counter()
    r = weekly_flow(params)
    _summary(r, time.perf_counter() - t)
    return _undelivered(r, args.send)


def _undelivered(r: Any, send: bool) -> int:
    """Say in one sentence when e-mails the run was asked to send wait in the outbox; exit 1."""
    if not (send and r.smtp and r.pending):
        return 0
    print(
        f"chs: error: {r.pending} of {r.emails} e-mails could not be delivered (the server's "
        f"answer is in the warnings above) and wait in {r.out / 'outbox'}; "
        f"`chs send --as-of {r.as_of}` delivers them.",
        file=sys.stderr,
    )
    return 1


def _summary(r: Any, seconds: float) -> None:
    seg = r.segments
    _print(
        f"{r.as_of}: scored {r.accounts:,} accounts — {seg.get('healthy', 0):,} healthy, {seg.get('neutral', 0):,} neutral, "
        f"{seg.get('at_risk', 0):,} at risk, {seg.get('insufficient_data', 0):,} with insufficient data; "
        f"{r.actions:,} actions; {seconds:.1f} s"
    )
    c = getattr(r, "loop", None)
    if c:
        _print(
            f"  actions: {c['fired']:,} fired = {c['new']:,} new + {c['carried']:,} carried + "
            f"{c['deferred']:,} deferred + {c['holdout']:,} held out; {c['cooling']:,} in "
            f"cooldown, {c['expired']:,} expired, {c['updated']:,} status updates applied"
        )
    _print(f"  files: {r.out}")
    for action, why in getattr(r, "skipped_rules", {}).items():
        _print(f"  playbook skipped: {action!r} — {why}")
    if r.sent:
        _print(f"  e-mails: {r.sent} sent, {r.pending} left in {r.out / 'outbox'}")
    elif r.emails:
        why = "" if r.smtp else " (CHS_SMTP_HOST is not set; `chs send` delivers them later)"
        _print(f"  e-mails: {r.emails} written to {r.out / 'outbox'}, not sent{why}")


def cmd_backfill(args: argparse.Namespace) -> int:
    """Back-fill the dates from --start to --end and print how long it took."""
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
    """Read and check every source, print the counts, and write nothing."""
    from flows.cli.validate import validate_sources

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
    """Deliver the e-mails waiting in one date's outbox or every date's; exit 1 if any are left."""
    from flows.cli.send_chat import send_chat_outboxes
    from tasks.config import load_config
    from tasks.mail.outbox import pending
    from tasks.mail.smtp import SmtpSettings, send_outbox

    cfg = load_config(Path(args.config))
    smtp = SmtpSettings.from_env()
    if smtp is None and not cfg.notify.targets():
        raise ConfigError("CHS_SMTP_HOST is not set, so there is no server to send to.")
    chat_left = send_chat_outboxes(cfg, args.as_of, _print)
    if smtp is None:
        _print("e-mails not sent: CHS_SMTP_HOST is not set")
        return 1 if chat_left else 0
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
    return 1 if total_left or chat_left else 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the weekly and backfill deployments until stopped."""
    from flows.deploy import serve

    serve(Path(args.config), args.cron, args.timezone)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the demo data and config, then (unless --skip-run) back-fill history and run it."""
    from demodata.folder import make_demo

    if args.accounts < 10:
        raise ConfigError("--accounts must be at least 10.")
    t = time.perf_counter()
    today = utc_today()
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
    """Back-test the score against churn and print the summary."""
    from flows.backtest import backtest_flow
    from tasks.backtest import format_summary

    if args.horizon_days < 1:
        raise ConfigError("--horizon-days must be at least 1.")
    if args.compare and not Path(args.compare).is_file():
        raise ConfigError(f"--compare: config file {args.compare} does not exist.")
    report = backtest_flow(
        config_path=args.config,
        as_of=args.as_of,
        horizon_days=args.horizon_days,
        compare_with=args.compare,
    )
    from tasks.backtest_horizons import format_horizons

    _print(format_summary(report))
    _print(format_horizons(report))
    if args.compare:
        from tasks.compare import format_compare

        _print(format_compare(report["compare"], args.compare))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented starter config."""
    from flows.cli.init import write_starter_config

    path = write_starter_config(Path(args.path), args.force)
    _print(f"wrote {path}: point [sources.*] at your data, then run `chs validate --config {path}`")
    return 0


def cmd_clv(args: argparse.Namespace) -> int:
    """Fit the CLV models on an orders file and print the summary."""
    from flows.cli.clv import clv_command, format_summary

    summary = clv_command(
        args.orders, args.calibration_end, args.out, horizon_weeks=args.horizon_weeks
    )
    _print(format_summary(summary))
    return 0


def cmd_actions(args: argparse.Namespace) -> int:
    """Write the open actions as a CSV a CSM can edit and feed back (``chs actions export``)."""
    from tasks.action_export import export_actions
    from tasks.config import load_config

    path, n = export_actions(load_config(Path(args.config)), args.as_of, args.out)
    _print(f"{n:,} open actions written to {path}; edit status (and note, author, snooze_until)")
    return 0


def cmd_writeback(args: argparse.Namespace) -> int:
    """Write a date's changed scores back to the CRM (dry run unless --apply); 1 if any failed."""
    from flows.writeback import describe
    from tasks.config import load_config
    from tasks.writeback.run import writeback

    result = writeback(load_config(Path(args.config)), args.as_of, args.apply)
    for line in describe(result):
        _print(line)
    return 1 if result.failed else 0


COMMANDS = {
    "actions": cmd_actions,
    "run": cmd_run,
    "backfill": cmd_backfill,
    "validate": cmd_validate,
    "send": cmd_send,
    "serve": cmd_serve,
    "demo": cmd_demo,
    "clv": cmd_clv,
    "init": cmd_init,
    "backtest": cmd_backtest,
    "writeback": cmd_writeback,
}
