"""The weekly flow on the demo with loopback Slack, Teams and HubSpot servers: the summary
and the expected alerts arrive once each (through 500s and a webhook that was down, with
``chs send``), the scores are written back, and a failed run posts its cause and run id.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from flows.cli.main import main
from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tasks.config import load_config
from tasks.errors import ValidationGateError
from tasks.writeback.run import writeback
from tests.conftest import DEMO_END
from tests.loopback_http import Answer, Loopback, Request, loopback_server
from tests.tasks.writeback.test_writeback import TOKEN, _hubspot

SECRET = "T0DEMO/B0DEMO/hooksecret"
WEEK1 = DEMO_END - timedelta(days=7)


class _Hooks:
    """Route the loopback server's requests: Slack, Teams and HubSpot; note what was accepted."""

    def __init__(self) -> None:
        self.slack_failures: list[int] = []  # statuses to answer Slack with first
        self.slack_down = False
        self.accepted: Counter[tuple[str, str]] = Counter()  # (tool, body) -> times accepted
        self.hubspot = _hubspot(bad=set())
        self.batches: list[int] = []

    def __call__(self, r: Request) -> Answer:
        if r.path.startswith("/crm/"):
            self.batches.append(len(r.json()["inputs"]))
            answer: Answer = self.hubspot(r)
            return answer
        tool = "slack" if r.path == f"/slack/{SECRET}" else "teams"
        if tool == "slack" and (self.slack_down or self.slack_failures):
            status = self.slack_failures.pop(0) if self.slack_failures else 503
            return status, {}, b"trouble"
        self.accepted[(tool, r.body.decode())] += 1
        return (200, {}, b"ok") if tool == "slack" else (202, {}, b"")

    def titles(self, tool: str) -> list[str]:
        out = []
        for (t, body), _n in self.accepted.items():
            if t == tool:
                doc = json.loads(body)
                if tool == "slack":
                    out.append(doc["blocks"][0]["text"]["text"])
                else:
                    out.append(doc["attachments"][0]["content"]["body"][0]["text"])
        return out


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Loopback, _Hooks]]:
    hooks = _Hooks()
    with loopback_server() as s:
        s.respond = hooks
        monkeypatch.delenv("CHS_SMTP_HOST", raising=False)
        monkeypatch.setenv("CHS_SLACK_WEBHOOK_URL", f"{s.url}/slack/{SECRET}")
        monkeypatch.setenv("CHS_TEAMS_WEBHOOK_URL", f"{s.url}/teams/{SECRET}")
        monkeypatch.setenv("CHS_CRM_TOKEN", TOKEN)
        yield s, hooks


def _configure(demo: Path, url: str) -> Path:
    config = demo / "chs.toml"
    config.write_text(
        config.read_text()
        + "\n[notify.slack]\n[notify.teams]\n"
        + f'[writeback]\ntarget = "hubspot"\nbase_url = "{url}"\napply = true\n'
    )
    return config


def _expected(out: Path) -> list[str]:
    scores = pl.read_parquet(out / "scores.parquet")
    actions = pl.read_csv(out / "actions.csv", try_parse_dates=True)
    drops = scores.filter(pl.col("drop_alert"))["account_id"].sort().to_list()
    urgent = actions.filter(
        (pl.col("priority") == "urgent") & (pl.col("opened_on") == pl.col("as_of"))
    )
    return (
        ["summary"]
        + [f"drop-{a}" for a in drops]
        + [f"action-{a}" for a in urgent["account_id"].sort().to_list()]
    )


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_demo_messages_arrive_once_and_scores_are_written_back(
    demo: Path, server: tuple[Loopback, _Hooks]
) -> None:
    s, hooks = server
    config = _configure(demo, s.url)

    # week 1: Slack is down; Teams takes everything; the write-back sends every account
    hooks.slack_down = True
    weekly_flow(WeeklyParams(config_path=str(config), as_of=WEEK1, send=True))
    week1 = demo / "out" / WEEK1.isoformat()
    files = sorted(p.name for p in (week1 / "outbox" / "chat").glob("[0-9]*.json"))
    labels = _expected(week1)
    assert len(files) == 2 * len(labels)  # each message once per tool
    assert len(hooks.titles("teams")) == len(labels)
    assert hooks.titles("slack") == []
    n_accounts = pl.read_parquet(week1 / "scores.parquet").height
    assert sum(hooks.batches) == n_accounts
    assert max(hooks.batches) <= 100

    # `chs send` after the failed delivery delivers the rest, once each, and nothing to Teams
    hooks.slack_down = False
    assert main(["send", "--config", str(config), "--as-of", WEEK1.isoformat()]) == 0
    assert len(hooks.titles("slack")) == len(labels)
    assert len(hooks.titles("teams")) == len(labels)
    assert set(hooks.accepted.values()) == {1}
    assert main(["send", "--config", str(config)]) == 0  # nothing left: nothing posted again
    assert sum(hooks.accepted.values()) == 2 * len(labels)

    # week 2: Slack answers 500 twice, then 200: each message still arrives exactly once
    hooks.accepted.clear()
    hooks.batches.clear()
    hooks.slack_failures = [500, 500]
    weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END, send=True))
    week2 = demo / "out" / DEMO_END.isoformat()
    labels = _expected(week2)
    assert any(x.startswith("drop-") for x in labels)  # the demo has score drops this week
    slack = hooks.titles("slack")
    assert len(slack) == len(labels) == len(hooks.titles("teams"))
    assert set(hooks.accepted.values()) == {1}
    assert sum(t.startswith("Customer health — week ending") for t in slack) == 1
    assert sum(t.startswith("Score drop:") for t in slack) == sum(
        x.startswith("drop-") for x in labels
    )
    sent = json.loads((week2 / "outbox" / "chat" / "sent.json").read_text())
    assert len(sent) == 2 * len(labels)

    # the write-back of week 2 sent only what changed; a second one sends nothing
    assert sum(hooks.batches) == n_accounts  # as_of changed for every account
    hooks.batches.clear()
    again = writeback(load_config(config), DEMO_END, apply=True)
    assert (again.values, hooks.batches) == (0, [])
    # the webhook URL is a secret: in no outbox file
    assert not [p for p in demo.glob("out/*/outbox/chat/*") if SECRET in p.read_text()]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_run_posts_its_cause_and_run_id(
    demo: Path, server: tuple[Loopback, _Hooks]
) -> None:
    s, hooks = server
    config = demo / "chs.toml"
    config.write_text(config.read_text() + "\n[notify.slack]\n")
    nps = demo / "surveys" / "nps.csv"
    lines = nps.read_text().splitlines()
    broken = [lines[0]] + [
        ",".join(f if i != 3 else "42" for i, f in enumerate(ln.split(","))) if n % 5 else ln
        for n, ln in enumerate(lines[1:])
    ]
    nps.write_text("\n".join(broken) + "\n")
    (demo / "surveys" / "csat.csv").unlink()
    (demo / "surveys" / "ces.csv").unlink()
    with pytest.raises(ValidationGateError):
        weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END))
    assert hooks.titles("slack") == [f"Customer health run FAILED for {DEMO_END}"]
    ((_, body),) = hooks.accepted
    text = json.loads(body)["blocks"][1]["text"]["text"]
    assert "Cause: survey_responses" in text
    assert "max_invalid_share" in text
    run = json.loads(body)["blocks"][2]["fields"][0]["text"]
    assert run.startswith("*Flow run*\n")
    assert run.endswith(")")
    assert not (demo / "out" / DEMO_END.isoformat()).exists()
