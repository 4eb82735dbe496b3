"""The Jinja2 environment over ``reports/templates`` and the report's rendering.

Templates only place finished values: every number reaching them is computed and formatted
by ``tasks.report.context``.
"""

from __future__ import annotations

import contextlib
import threading
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateError, select_autoescape

from tasks.report.context import ReportContext
from tasks.report.format import fmt_num, fmt_signed, pct_filter


@cache
def environment() -> Environment:
    """Return the shared Jinja2 environment; autoescaping is on for every template."""
    env = Environment(
        loader=PackageLoader("reports", "templates"),  # package data of the wheel
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["pct"] = pct_filter
    env.filters["signed"] = fmt_signed
    env.filters["oneline"] = lambda v: " ".join(str(v).split()) if v is not None else ""
    return env


# what a weekly run renders: the report, the e-mails and the account pages
RUN_TEMPLATES = ("report.html.j2", "email.html.j2", "email.txt.j2", "account.html.j2")


def _compile(names: tuple[str, ...]) -> None:
    for name in names:
        # a broken template is reported again, with its place, where it is rendered
        with contextlib.suppress(TemplateError):
            environment().get_template(name)


@cache
def preload() -> threading.Thread:
    """Compile the run's templates in a background thread (once); ``get_template`` then finds
    them in the environment's cache instead of spending ~0.1 s in the render steps.

    A run calls this as it starts, while its sources are read (Polars releases the GIL there).
    """
    thread = threading.Thread(target=_compile, args=(RUN_TEMPLATES,), name="chs-templates")
    thread.daemon = True
    thread.start()
    return thread


def render_report(context: ReportContext) -> str:
    """Render the stakeholder report to HTML."""
    return environment().get_template("report.html.j2").render(**context)
