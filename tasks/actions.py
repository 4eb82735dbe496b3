"""Recommended retention actions from the config's playbook rules (scores -> actions).

A rule fires for an account when every condition in its ``when`` table holds. A condition is a
plain value (equality) or a table of operators: ``eq ne lt lte gt gte in not_in is_null``.
Conditions may name any column of the scored frame: segment, score, deltas, dimensions,
features (``license_utilisation``) and account attributes (``arr``, ``tier``, ``days_to_renewal``).
"""

from __future__ import annotations

import string
from datetime import date, timedelta
from typing import Any

import polars as pl

from tasks.config import ActionRule, Config
from tasks.errors import ConfigError
from tasks.schemas import ACTION_COLUMNS

_OPS = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c.ne_missing(v),
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "in": lambda c, v: c.is_in(v),
    "not_in": lambda c, v: ~c.is_in(v),
    "is_null": lambda c, v: c.is_null() if v else c.is_not_null(),
}
PRIORITY_ORDER = {"urgent": 0, "high": 1, "medium": 2, "low": 3}


def rule_predicate(rule: ActionRule, columns: list[str]) -> pl.Expr:
    """Build the Polars predicate of a rule; unknown columns or operators are config errors."""
    expr = pl.lit(True)
    for col, cond in rule.when.items():
        if col not in columns:
            raise ConfigError(
                f"Action {rule.action!r}: condition column {col!r} does not exist in the scores."
            )
        c = pl.col(col)
        conds = cond if isinstance(cond, dict) else {"eq": cond}
        for op, value in conds.items():
            if op not in _OPS:
                raise ConfigError(f"Action {rule.action!r}: unknown operator {op!r} on {col!r}.")
            expr = expr & _OPS[op](c, value)
    return expr.fill_null(False)


class _Blank(string.Formatter):
    """Format a reason template, printing 'n/a' for missing values instead of failing."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "n/a"
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


def _check_template(rule: ActionRule, columns: list[str]) -> None:
    for _, field, _, _ in string.Formatter().parse(rule.reason):
        if field and field not in columns:
            raise ConfigError(f"Action {rule.action!r}: reason names unknown column {{{field}}}.")


def recommend(scores: pl.DataFrame, cfg: Config, as_of: date) -> pl.DataFrame:
    """Return one row per (account, fired rule) with owner, priority, due date and reason."""
    cols = scores.columns
    fmt = _Blank()
    rows: list[dict[str, Any]] = []
    for rule in cfg.actions:
        _check_template(rule, cols)
        hits = scores.filter(rule_predicate(rule, cols))
        for r in hits.iter_rows(named=True):
            owner = r.get("csm_email") or "unassigned" if rule.owner == "csm" else rule.owner
            rows.append(
                {
                    "account_id": r["account_id"],
                    "as_of": as_of,
                    "action": rule.action,
                    "reason": fmt.format(rule.reason, **r),
                    "owner": owner,
                    "priority": rule.priority,
                    "due_date": as_of + timedelta(days=rule.due_days),
                }
            )
    schema = {
        "account_id": pl.String,
        "as_of": pl.Date,
        "action": pl.String,
        "reason": pl.String,
        "owner": pl.String,
        "priority": pl.String,
        "due_date": pl.Date,
    }
    out = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    order = pl.col("priority").replace_strict(PRIORITY_ORDER, return_dtype=pl.Int8)
    return out.sort(order, "due_date", "account_id").select(ACTION_COLUMNS)
