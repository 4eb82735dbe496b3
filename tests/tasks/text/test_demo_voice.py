"""On the demo: an account whose reviews turn negative loses satisfaction points, gets the
negative-feedback playbook, and the report and its CSM's digest show the texts behind it.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from demodata.feedback import planted_account
from demodata.population import demo_window, population
from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tasks.report.accounts.pages import page_file
from tests.conftest import DEMO_END

PLAYBOOK = "Respond to a surge of negative feedback"


def _planted_id() -> str:
    # the demo fixture: 200 accounts, seed 11, 15 months (demodata.generate's streams)
    pop = population(np.random.default_rng([11, 0]), 200, demo_window(DEMO_END, 15))
    return str(pop.ids[planted_account(pop)])


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_reviews_turning_negative_cost_points_and_fire_the_playbook(demo: Path) -> None:
    config = str(demo / "chs.toml")
    before = DEMO_END - timedelta(days=140)  # its 90 days hold only the praise
    weekly_flow(WeeklyParams(config_path=config, as_of=before))
    weekly_flow(WeeklyParams(config_path=config, as_of=DEMO_END))
    who = _planted_id()
    rows = {}
    for day in (before, DEMO_END):
        scores = pl.read_parquet(demo / "out" / day.isoformat() / "scores.parquet")
        rows[day] = scores.filter(pl.col("account_id") == who).to_dicts()[0]
    then, now = rows[before], rows[DEMO_END]
    assert then["value_sentiment_90d"] > 0.3
    assert now["value_sentiment_90d"] < -0.2
    assert now["points_sentiment_90d"] < then["points_sentiment_90d"]
    assert now["points_negative_share_90d"] < then["points_negative_share_90d"]
    assert now["satisfaction"] < then["satisfaction"] - 10

    def fired(day: object) -> pl.DataFrame:
        acts = pl.read_csv(demo / "out" / str(day) / "actions.csv")
        return acts.filter((pl.col("account_id") == who) & (pl.col("action") == PLAYBOOK))

    assert fired(before).is_empty()
    assert fired(DEMO_END).height == 1

    out = demo / "out" / DEMO_END.isoformat()
    feedback = pl.read_csv(demo / "feedback.csv").filter(pl.col("account_id") == who)
    negative = feedback.filter(pl.col("created_at") > (DEMO_END - timedelta(days=60)).isoformat())
    report = (out / "report.html").read_text(encoding="utf-8")
    block = report[report.index('id="voice"') :]
    block = block[: block.index("</section>")]
    row = block[block.index(who) :]
    row = row[: row.index("</tr>")]
    assert PLAYBOOK in row
    quotes = re.findall(r'<span class="quote">(.*?)</span>', row)
    assert 2 <= len(quotes) <= 3  # the texts behind the signal, with channel and date
    written = {html.escape(t, quote=False) for t in negative["text"].to_list()}
    assert set(quotes) <= written  # the account's own recent negative texts
    shown = [html.unescape(q) for q in quotes]
    assert any(f" · {d[:10]} · " in row for d in negative["created_at"].to_list())
    assert "Languages read:" in block
    assert "zh" in block

    kpis = (out / "kpis.json").read_text(encoding="utf-8")
    assert '"complaint_rate"' in kpis
    assert '"sentiment_mean"' in kpis
    assert "Complaints per 100 accounts" in report
    assert "Customer sentiment" in report

    digests = []
    for p in (out / "outbox").glob("*.eml"):
        msg = BytesParser(policy=policy.default).parsebytes(p.read_bytes())
        body = msg.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        if f"- {now['name']}: sentiment" in text:
            digests.append(text[text.index("What your customers wrote") :])
    assert len(digests) == 1  # the account's CSM's digest, and no other
    assert PLAYBOOK in digests[0]
    assert f'"{shown[0]}"' in digests[0]

    # the account's page (it has an open action) shows the same texts, escaped, in its own block
    page = (out / "accounts" / page_file(who)).read_text(encoding="utf-8")
    section = page[page.index('id="feedback"') :]
    section = section[: section.index("</section>")]
    assert PLAYBOOK in section
    page_quotes = re.findall(r'<td class="quote">(.*?)</td>', section)
    assert page_quotes == quotes  # the same evidence as the report, in the same order
    assert "sentiment_90d (-" in section  # the points the text measures cost it
