"""The Jinja2 environment over ``reports/templates`` and the report's rendering.

Templates only place finished values: every number reaching them is computed and formatted
by ``tasks.report.context``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tasks.report.context import ReportContext
from tasks.report.format import fmt_num, fmt_signed, pct_filter

TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates"


@cache
def environment() -> Environment:
    """Return the shared Jinja2 environment; autoescaping is on for every template."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
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
