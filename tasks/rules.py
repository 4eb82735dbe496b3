"""Which playbook rules have data to decide on (scores -> the rules to fire, and the skipped).

The default playbooks name measures of every optional dataset; a user with accounts alone, or
accounts and surveys, has no ``open_urgent_tickets`` to compare. A rule whose columns are
missing from the scores, or empty for every account, cannot fire: it is skipped with a reason
the run summary shows, rather than stopping the run. A column nobody could have (a typo) is
still the config error ``recommend`` raises.
"""

from __future__ import annotations

import string

import polars as pl

from tasks.config import ActionRule
from tasks.features.build import FEATURE_SOURCES, KNOWN_FEATURES
from tasks.schemas import ACCOUNTS

_DATASET_OF = {col: ds for ds, cols in FEATURE_SOURCES.items() for col in cols}


def rule_columns(rule: ActionRule) -> list[str]:
    """Return the columns a rule reads: its conditions, then its reason's fields."""
    cols = list(rule.when)
    for _, field, _, _ in string.Formatter().parse(rule.reason):
        if field and field.isidentifier() and field not in cols:
            cols.append(field)
    return cols


def _no_data(col: str, scores: pl.DataFrame) -> str | None:
    """Say why ``col`` has no data in the scores, or None when it has (or is unknown)."""
    if col not in scores.columns:
        if col in _DATASET_OF:
            return f"no data for {col} (no {_DATASET_OF[col]} source)"
        if col in KNOWN_FEATURES or col in ACCOUNTS.schema:
            return f"no data for {col}"
        return None  # not a column anyone could have: recommend reports the config error
    if scores.height and scores[col].null_count() == scores.height:
        return f"no data for {col} (empty for every account)"
    return None


def skip_reason(rule: ActionRule, scores: pl.DataFrame) -> str | None:
    """Return why a rule cannot fire on these scores, or None when it has its data."""
    reasons = [r for c in rule_columns(rule) if (r := _no_data(c, scores)) is not None]
    return "; ".join(reasons) or None


def rules_with_data(
    rules: list[ActionRule], scores: pl.DataFrame
) -> tuple[list[ActionRule], dict[str, str]]:
    """Split the rules into those with data and the skipped ones (action -> reason)."""
    usable: list[ActionRule] = []
    skipped: dict[str, str] = {}
    for rule in rules:
        why = skip_reason(rule, scores)
        if why is None:
            usable.append(rule)
        else:
            skipped[rule.action] = why
    return usable, skipped
