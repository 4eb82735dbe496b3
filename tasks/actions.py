"""Recommended retention actions from the config's playbook rules (scores -> actions).

A rule fires for an account when every condition in its ``when`` table holds. A condition is a
plain value (equality) or a table of operators: ``eq ne lt lte gt gte in not_in is_null``.
Conditions may name any column of the scored frame: segment, score, deltas, dimensions,
features (``license_utilisation``) and account attributes (``arr``, ``tier``, ``days_to_renewal``).

Reasons are ``str.format`` templates over the same columns, built with Polars expressions. Each
field is vectorised where the result provably equals Python's ``format``: no spec on strings,
integers, booleans, dates and floats, and ``[sign][,|_][.precision](f|F|%)`` on numbers. Any
other spec (width, alignment, ``e``, ``g``, ``!r``, a date's strftime ...) and the few values
whose vectorised text could differ (a tie under ``.1f`` and finer, ``|x| < 1e-4`` without a spec,
huge values) are formatted row by row in Python, as they always were.
"""

from __future__ import annotations

import re
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
    # a rule without conditions fires on every row (a bare literal: no null to fill)
    return expr.fill_null(False) if rule.when else pl.lit(True)


class _Blank(string.Formatter):
    """Format a reason template, printing 'n/a' for missing values instead of failing."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "n/a"
        try:
            # typeshed types Formatter.format_field as Any; it returns format()'s str.
            text: str = super().format_field(value, format_spec)
            return text
        except (ValueError, TypeError):
            return str(value)


def _check_template(rule: ActionRule, columns: list[str]) -> None:
    for _, field, _, _ in string.Formatter().parse(rule.reason):
        if field and field not in columns:
            raise ConfigError(f"Action {rule.action!r}: reason names unknown column {{{field}}}.")


_ACTION_SCHEMA = pl.Schema(
    {
        "account_id": pl.String,
        "as_of": pl.Date,
        "action": pl.String,
        "reason": pl.String,
        "owner": pl.String,
        "priority": pl.String,
        "due_date": pl.Date,
    }
)
# [sign][grouping][.precision](f|F|%): the number specs built with expressions
_NUMBER_SPEC = re.compile(r"(?P<sign>[-+ ]?)(?P<group>[,_]?)(?:\.(?P<digits>\d+))?(?P<kind>[fF%])")
# A field's text and whether that text is Python's; rows where it is not are formatted in Python.
_Piece = tuple[pl.Expr, pl.Expr]


def _plain(c: pl.Expr, dtype: pl.DataType) -> _Piece | None:
    """Return ``str(value)`` for the dtypes whose text Polars writes exactly as Python does."""
    if dtype in (pl.String, pl.Categorical, pl.Enum, pl.Null) or dtype.is_integer():
        return c.cast(pl.String), pl.lit(True)
    if dtype == pl.Boolean:
        return pl.when(c).then(pl.lit("True")).otherwise(pl.lit("False")), pl.lit(True)
    if dtype == pl.Date:  # Python has no dates outside years 1-9999
        return c.cast(pl.String), c.dt.year().is_between(1, 9999)
    if dtype.is_float():
        v = c.cast(pl.Float64)
        text = pl.when(v.is_nan()).then(pl.lit("nan")).otherwise(v.cast(pl.String))
        # Polars and repr() agree on the shortest digits, but below 1e-4 repr switches to 1e-05
        return text, (v == 0) | (v.abs() >= 1e-4) | v.is_nan()
    return None


def _digits(v: pl.Expr, precision: int) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Return |v| rounded half-to-even to ``precision`` decimals, as Python's exact 'f' does.

    The parts are the whole part, the decimals (with their point) and whether the rounding is
    exact.
    """
    y = v.abs() * float(10**precision)
    if precision == 0:  # y is v itself: rounding it is exact as long as it fits an Int64
        exact = y < 2.0**63
    else:
        # v * 10**p was rounded once (by at most y * 2**-53); away from a tie that cannot move
        # the result to the other integer, so only values this close to x.5 go to Python
        exact = (y < 2.0**52) & ((y - y.floor() - 0.5).abs() > y * 2.0**-52)
    k = pl.when(exact).then(y).otherwise(0.0).round(0).cast(pl.Int64)
    if precision == 0:
        return k.cast(pl.String), pl.lit(""), exact
    unit = 10**precision
    decimals = pl.concat_str(pl.lit("."), (k % unit).cast(pl.String).str.zfill(precision))
    return (k // unit).cast(pl.String), decimals, exact


def _group(whole: pl.Expr, sep: str) -> pl.Expr:
    """Insert ``sep`` between groups of three digits, counted from the right."""
    grouped = whole.str.reverse().str.replace_all(r"(\d{3})", "${1}" + sep).str.strip_chars_end(sep)
    return grouped.str.reverse()


def _number(c: pl.Expr, dtype: pl.DataType, spec: str) -> _Piece | None:
    """Return ``format(value, spec)`` for a number and one of the specs in ``_NUMBER_SPEC``."""
    m = _NUMBER_SPEC.fullmatch(spec)
    numeric = (dtype.is_numeric() and not dtype.is_decimal()) or dtype == pl.Boolean
    precision = 6 if m is None or m["digits"] is None else int(m["digits"])
    if m is None or not numeric or precision > 15:
        return None
    # Python formats ints and bools as floats, and '%' as the float value * 100 in 'f'
    v = c.cast(pl.Float64)
    if m["kind"] == "%":
        v = v * 100.0
    whole, decimals, exact = _digits(v, precision)
    if m["group"]:
        whole = _group(whole, m["group"])
    text = pl.concat_str(whole, decimals)
    upper = m["kind"] == "F"
    text = (
        pl.when(v.is_nan())
        .then(pl.lit("NAN" if upper else "nan"))
        .when(v.is_infinite())
        .then(pl.lit("INF" if upper else "inf"))
        .otherwise(text)
    )
    # the sign bit, so -0.0 and values that round to zero from below print "-0" as in Python
    negative = (v.reinterpret(dtype=pl.Int64) < 0) & v.is_not_nan()
    sign = pl.when(negative).then(pl.lit("-")).otherwise(pl.lit(m["sign"].strip("-")))
    suffix = pl.lit("%" if m["kind"] == "%" else "")
    return pl.concat_str(sign, text, suffix), exact | v.is_nan() | v.is_infinite()


def _field(name: str, spec: str, dtype: pl.DataType) -> _Piece | None:
    """Return one reason field as text ('n/a' when missing), or None to format it in Python."""
    c = pl.col(name)
    piece = _plain(c, dtype) if spec == "" else _number(c, dtype, spec)
    if piece is None:
        return None
    text, exact = piece
    return pl.when(c.is_null()).then(pl.lit("n/a")).otherwise(text), c.is_null() | exact


def _reason(template: str, schema: pl.Schema) -> _Piece | None:
    """Return the reason of a template as one expression, or None if Python must format it."""
    texts: list[pl.Expr] = []
    exact: list[pl.Expr] = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if literal:
            texts.append(pl.lit(literal))
        if field is None:
            continue
        # "{0}", "{}", "{x.attr}", "{x[0]}", "{x!r}" and nested "{x:{w}}" stay Python's
        if conversion is not None or not field.isidentifier():
            return None
        piece = _field(field, spec or "", schema[field])
        if piece is None:
            return None
        texts.append(piece[0])
        exact.append(piece[1])
    return (
        pl.concat_str(texts) if texts else pl.lit(""),
        pl.all_horizontal(exact) if exact else pl.lit(True),
    )


def _owner(rule: ActionRule, schema: pl.Schema) -> pl.Expr:
    if rule.owner != "csm":
        return pl.lit(rule.owner, pl.String)
    if "csm_email" not in schema:
        return pl.lit("unassigned", pl.String)
    email = pl.col("csm_email").cast(pl.String)
    return pl.when(email.is_null() | (email == "")).then(pl.lit("unassigned")).otherwise(email)


def _plan(rule: ActionRule, scores: pl.DataFrame, as_of: date) -> pl.LazyFrame:
    """Plan the actions of one rule in the order of the scores, flagging inexact reasons."""
    _check_template(rule, scores.columns)
    reason, exact = _reason(rule.reason, scores.schema) or (pl.lit(None, pl.String), pl.lit(False))
    # the row of each hit, for _patch; longer than any column name starting with "_row"
    row = "_row" + "_" * max((len(c) for c in scores.columns if c.startswith("_row")), default=0)
    # lazy, so the filter only reads the columns the rule and its reason use
    return (
        scores.lazy()
        .with_row_index(row)
        .filter(rule_predicate(rule, scores.columns))
        .select(
            pl.col("account_id").cast(pl.String),
            pl.lit(as_of, pl.Date).alias("as_of"),
            pl.lit(rule.action, pl.String).alias("action"),
            reason.alias("reason"),
            _owner(rule, scores.schema).alias("owner"),
            pl.lit(rule.priority, pl.String).alias("priority"),
            pl.lit(as_of + timedelta(days=rule.due_days), pl.Date).alias("due_date"),
            exact.fill_null(False).alias("_exact"),
            pl.col(row).alias("_row"),
        )
    )


def _patch(rule: ActionRule, actions: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """Format in Python the reasons that the expressions could not build exactly."""
    slow = ~actions["_exact"]
    if slow.any():
        fmt = _Blank()
        rows = scores.gather(actions.filter(slow)["_row"]).iter_rows(named=True)
        texts = [fmt.format(rule.reason, **r) for r in rows]
        actions = actions.with_columns(actions["reason"].clone().scatter(slow.arg_true(), texts))
    return actions.drop("_exact", "_row")


def recommend(scores: pl.DataFrame, cfg: Config, as_of: date) -> pl.DataFrame:
    """Return one row per (account, fired rule) with owner, priority, due date and reason."""
    planned = pl.collect_all([_plan(rule, scores, as_of) for rule in cfg.actions])
    frames = [_patch(rule, a, scores) for rule, a in zip(cfg.actions, planned, strict=True)]
    out = pl.concat(frames, rechunk=True) if frames else pl.DataFrame(schema=_ACTION_SCHEMA)
    order = pl.col("priority").replace_strict(PRIORITY_ORDER, return_dtype=pl.Int8)
    # stable: ties keep the rules' order, so the same data always gives the same file
    return out.sort(order, "due_date", "account_id", maintain_order=True).select(ACTION_COLUMNS)
