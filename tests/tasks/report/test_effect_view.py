"""The report's effectiveness section: each playbook's reading, and the hold-out footnote."""

from __future__ import annotations

import polars as pl

from tasks.effectiveness import MIN_GROUP, estimate
from tasks.report.effect_view import effectiveness_view


def _rows(action: str, treated: tuple[int, int], held: tuple[int, int]) -> pl.DataFrame:
    """(recovered, n) of the treated and of the held-out accounts of one playbook."""
    flags = [True] * treated[0] + [False] * (treated[1] - treated[0])
    flags += [True] * held[0] + [False] * (held[1] - held[0])
    return pl.DataFrame(
        {
            "action": [action] * len(flags),
            "holdout": [False] * treated[1] + [True] * held[1],
            "recovered": flags,
            "churned": [False] * len(flags),
        }
    )


def test_each_playbook_reads_as_its_interval_says_and_the_footnote_names_the_holdout() -> None:
    rows = pl.concat(
        [
            _rows("Call", (150, 200), (10, 40)),  # 75% vs 25%: the interval is well above 0
            _rows("Workshop", (100, 200), (20, 40)),  # 50% vs 50%
            _rows("Review", (10, 20), (1, 3)),  # fewer than MIN_GROUP held out
            _rows("Lunch", (5, 10), (0, 0)),  # nobody held out yet
        ]
    )
    doc = {
        "playbooks": estimate(rows, ["Call", "Workshop", "Review", "Lunch", "Unused"]),
        "holdout_share": 0.1,
        "min_group": MIN_GROUP,
        "cohort": "c",
        "recovery": "r",
        "churn_days": 90,
        "method": "m",
    }
    view = effectiveness_view(doc)
    assert view is not None
    reading = {r["action"]: r["verdict"] for r in view["rows"]}
    # a playbook nobody qualified for has no row
    assert reading == {
        "Call": "helps",
        "Workshop": "no clear effect",
        "Review": "too few to tell",
        "Lunch": "no hold-out yet",
    }
    call = view["rows"][0]
    assert (call["recovered_treated"], call["recovered_holdout"]) == ("75%", "25%")
    assert call["recovered_difference"] == "+50.0 pts"
    assert (view["holdout_share"], view["holdout_on"], view["min_group"]) == ("10%", True, 30)
    assert effectiveness_view({**doc, "holdout_share": 0.0})["holdout_on"] is False  # type: ignore[index]
    assert effectiveness_view(None) is None
