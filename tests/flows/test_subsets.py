"""Every subset of the optional datasets runs with the default model and playbooks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tests.conftest import DEMO_END

OPTIONAL = ["orders", "tickets", "survey_responses", "usage_events", "outcomes"]  # the demo's
SUBSETS = [
    (),  # accounts alone
    *((d,) for d in OPTIONAL),  # accounts and one other
    *(tuple(o for o in OPTIONAL if o != d) for d in OPTIONAL),  # all but one
]


def keep_sources(config: Path, keep: set[str]) -> None:
    """Rewrite a demo chs.toml so only accounts and ``keep`` remain as sources."""
    blocks = re.split(r"(?m)^(?=\[)", config.read_text())
    kept = [
        b
        for b in blocks
        if not (m := re.match(r"\[sources\.(\w+)", b)) or m[1] in {"accounts", *keep}
    ]
    config.write_text("".join(kept))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("keep", SUBSETS, ids=lambda k: "+".join(("accounts", *k)))
def test_each_subset_of_the_datasets_runs_and_names_the_skipped_rules(
    demo: Path, keep: tuple[str, ...]
) -> None:
    keep_sources(demo / "chs.toml", set(keep))
    r = weekly_flow(WeeklyParams(config_path=str(demo / "chs.toml"), as_of=DEMO_END))
    validation = json.loads((r.out / "validation.json").read_text())["datasets"]
    assert set(validation) == {"accounts", *keep}
    urgent = "Escalate open urgent tickets with support"
    if "tickets" in keep:
        assert urgent not in r.skipped_rules
    else:
        assert r.skipped_rules[urgent] == "no data for open_urgent_tickets (no tickets source)"
    if "survey_responses" not in keep:
        assert "no survey_responses source" in r.skipped_rules["Ask for a reference or case study"]
    # no rule is skipped for a dataset that is there
    for why in r.skipped_rules.values():
        for ds in keep:
            assert f"no {ds} source" not in why
    assert (r.out / "actions.csv").is_file()
    assert (r.out / "report.html").is_file()
