"""Which playbook rules have data: rules as plain functions on tiny inline frames."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from tasks.actions import recommend
from tasks.config import ActionRule, Config
from tasks.errors import ConfigError
from tasks.rules import rule_columns, rules_with_data


def _rule(action: str, when: dict[str, object], reason: str = "x") -> ActionRule:
    return ActionRule(action=action, when=when, reason=reason)


SCORES = pl.DataFrame(
    {
        "account_id": ["a", "b", "c"],
        "segment": ["at_risk", "healthy", None],
        "seats": pl.Series([None, None, None], dtype=pl.Int64),
        "nps_account": [10.0, None, 60.0],
    }
)


def test_rule_columns_are_the_conditions_then_the_reason_fields() -> None:
    rule = _rule("r", {"segment": "at_risk"}, "{nps_account:.0f} of {seats} and {segment}")
    assert rule_columns(rule) == ["segment", "nps_account", "seats"]


def test_rules_without_data_are_skipped_with_the_reason() -> None:
    rules = [
        _rule("urgent", {"open_urgent_tickets": {"gte": 1}}),  # no tickets source
        _rule("seats", {"segment": "at_risk"}, "{seats} seats"),  # seats null everywhere
        _rule("promoter", {"nps_account": {"gte": 50}}),  # some accounts have NPS: it runs
    ]
    usable, skipped = rules_with_data(rules, SCORES)
    assert [r.action for r in usable] == ["promoter"]
    assert skipped == {
        "urgent": "no data for open_urgent_tickets (no tickets source)",
        "seats": "no data for seats (empty for every account)",
    }


def test_a_column_nobody_could_have_is_still_a_config_error() -> None:
    rule = _rule("typo", {"segmnet": "at_risk"})
    usable, skipped = rules_with_data([rule], SCORES)
    assert usable == [rule]  # not skipped: recommend names the typo
    assert skipped == {}
    cfg = Config.model_validate({"sources": {"accounts": {"uri": "a.csv"}}, "actions": []})
    with pytest.raises(ConfigError, match="segmnet"):
        recommend(SCORES, cfg.model_copy(update={"actions": usable}), date(2026, 1, 5))
