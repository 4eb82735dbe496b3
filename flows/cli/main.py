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
from typing import TYPE_CHECKING

from flows.cli.commands import COMMANDS
from flows.cli.parser import parser
from tasks.errors import ChsError  # noqa: E402

# Prefect reads these at import: no telemetry (there is no internet), and an ephemeral API.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
if TYPE_CHECKING:
    from flows.progress import Reporter
    from flows.server import TemporaryApi


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


def _quiet_prefect(debug: bool, verbose: bool = False, progress: bool = False) -> None:
    """Drop tracebacks from Prefect's console; with ``progress`` (a command that shows one),
    also Prefect's own INFO lines unless ``verbose`` (``flows.progress.PrefectQuiet``).
    """
    from flows.progress import PrefectQuiet

    for h in logging.getLogger().handlers:  # a second command in one process: its own filter
        for f in [f for f in h.filters if isinstance(f, PrefectQuiet)]:
            h.removeFilter(f)
        if progress:
            h.addFilter(PrefectQuiet(verbose or debug))
    if debug:
        return
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for h in logging.getLogger(name).handlers:
            if not any(isinstance(f, _NoTracebacks) for f in h.filters):
                h.addFilter(_NoTracebacks())


def _show_progress(args: argparse.Namespace) -> Reporter | None:
    """Install the progress display of a command that runs flows: live on a terminal."""
    if args.command not in FLOW_MODULES or getattr(args, "skip_run", False):
        return None
    from flows.progress import TerminalReporter, for_stream, install

    shown = for_stream(sys.stderr, args.command)
    if isinstance(shown, TerminalReporter):
        for h in logging.getLogger().handlers:
            shown.adopt(h)  # Prefect's warnings print above the live line, not through it
    install(shown)
    return shown


# the commands that run flows, and the modules they import before their first flow call
FLOW_MODULES = {
    "run": ("flows.weekly",),
    "backfill": ("flows.backfill",),
    "demo": ("demodata.folder", "flows.backfill"),
    "backtest": ("flows.backtest",),
}


def spawn_api(args: argparse.Namespace) -> TemporaryApi | None:
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
    """Import the command's flows while the server comes up, then point Prefect at it.

    Great Expectations is imported with the flows; see ``flows.server.TemporaryApi``.
    """
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
    api = spawn_api(args)
    shown: Reporter | None = None
    try:
        if args.command not in ("clv", "init"):
            from prefect.logging.configuration import setup_logging

            setup_logging()  # Prefect's handlers exist from here on, so they can be quietened
            shown = _show_progress(args)
            _quiet_prefect(args.debug, args.verbose, shown is not None)
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
    finally:
        if shown is not None:
            shown.close()
            from flows.progress import install

            install(None)  # its stream may close with the command (a caller's capture)


if __name__ == "__main__":
    sys.exit(main())
