"""The Jinja2 environment over ``reports/templates`` and the report's rendering.

Templates only place finished values: every number reaching them is computed and formatted
by ``tasks.report.context``.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

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


def render_report(context: ReportContext) -> str:
    """Render the stakeholder report to HTML."""
    return environment().get_template("report.html.j2").render(**context)
