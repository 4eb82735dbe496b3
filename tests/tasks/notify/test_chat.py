"""Chat messages: Slack Block Kit and Teams Adaptive Card shapes, the outbox, and delivery to
a real loopback webhook that answers 429 and 500 (each message exactly once, URL never shown).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tasks.config import parse_config
from tasks.http_retry import Retry
from tasks.notify.messages import ADAPTIVE_CARD, failure_card, run_cards, slack_payload
from tasks.notify.webhook import chat_pending, send_chat, webhook_urls, write_chat_outbox
from tests.loopback_http import Loopback, loopback_server

AS_OF = date(2026, 11, 16)
SECRET = "T000/B000/XXXXsecretXXXX"


def _scored() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["A1", "A2", "A3"],
            "name": ["Acme <Corp> & Co", "Beta", "Gamma"],
            "score": [31.0, 75.0, 55.0],
            "segment": ["at_risk", "healthy", "neutral"],
            "arr": [60000.0, 1000.0, 5000.0],
            "score_delta_1w": [-14.0, 2.0, -11.0],
            "drop_alert": [True, False, True],
            "top_drivers": ["nps_account (-9.1)", None, "stickiness (-4.0)"],
            "change_drivers": ["nps_account (-8.0)", None, "stickiness (-6.0)"],
            "csm_email": ["ann@example.com", "bob@example.com", None],
            "slack_user_id": ["U0ANN", "U0BOB", None],
        }
    )


def _actions() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["A1", "A3", "A1"],
            "action": ["Executive business review", "Investigate the score drop", "Old one"],
            "reason": ["At risk with ARR 60,000", "Score fell -11 points", "carried"],
            "owner": ["ann@example.com", "csm", "ann@example.com"],
            "priority": ["urgent", "high", "urgent"],
            "due_date": [date(2026, 11, 23)] * 3,
            "opened_on": [AS_OF, AS_OF, date(2026, 11, 2)],  # the third was announced before
        }
    )


def _cfg(tmp_path: Path, notify: str = "[notify.slack]\n[notify.teams]\n") -> object:
    import tomllib

    text = f'[sources.accounts]\nuri = "a.csv"\n[output]\ndir = "out"\n{notify}'
    return parse_config(tomllib.loads(text), tmp_path)


def test_run_messages_are_a_summary_each_drop_and_each_new_urgent_action(tmp_path: Path) -> None:
    cards = run_cards(_scored(), _actions(), _cfg(tmp_path), AS_OF)  # type: ignore[arg-type]
    # one summary, the two accounts with a drop alert, the one urgent action opened today
    assert [c.label for c in cards] == ["summary", "drop-A1", "drop-A3", "action-A1"]
    assert cards[0].facts[2] == ("At risk", "1")
    assert "2 lost 10+ points" in cards[0].lines[0]
    assert "1 of them new and urgent" in cards[0].lines[1]


def test_slack_block_kit_mentions_the_csm_and_escapes_text(tmp_path: Path) -> None:
    drop = run_cards(_scored(), _actions(), _cfg(tmp_path), AS_OF)[1]  # type: ignore[arg-type]
    p = slack_payload(drop)
    assert set(p) == {"text", "blocks"}
    assert "<@U0ANN>" in p["text"]
    assert [b["type"] for b in p["blocks"]] == ["header", "section", "section", "context"]
    assert p["blocks"][0]["text"]["type"] == "plain_text"
    section = p["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert section["text"].endswith("CSM: <@U0ANN>")
    fields = p["blocks"][2]["fields"]
    assert fields[0] == {"type": "mrkdwn", "text": "*ARR*\n60,000"}
    # the account name "Acme <Corp> & Co" sits in the plain-text header, never as a link/mention
    assert "Acme <Corp> & Co" in p["blocks"][0]["text"]["text"]
    no_id = run_cards(_scored(), _actions(), _cfg(tmp_path), AS_OF)[2]  # type: ignore[arg-type]
    assert "<@" not in json.dumps(slack_payload(no_id))


def test_teams_message_carries_one_adaptive_card_1_4(tmp_path: Path) -> None:
    cards = run_cards(_scored(), _actions(), _cfg(tmp_path), AS_OF)  # type: ignore[arg-type]
    box = tmp_path / "chat"
    paths = write_chat_outbox(cards, ["teams"], box)
    doc = json.loads(paths[1].read_text())
    assert doc["tool"] == "teams"
    assert doc["label"] == "drop-A1"
    msg = doc["payload"]
    assert msg["type"] == "message"
    assert len(msg["attachments"]) == 1
    att = msg["attachments"][0]
    assert att["contentType"] == ADAPTIVE_CARD == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert {b["type"] for b in card["body"]} == {"TextBlock", "FactSet"}
    assert any(b.get("text") == "CSM: ann@example.com" for b in card["body"])


@pytest.fixture
def hook() -> Iterator[Loopback]:
    with loopback_server() as server:
        yield server


def _outbox(tmp_path: Path, tools: list[str]) -> Path:
    box = tmp_path / "outbox" / "chat"
    write_chat_outbox(
        run_cards(_scored(), _actions(), _cfg(tmp_path), AS_OF),  # type: ignore[arg-type]
        tools,
        box,
    )
    return box


def _bodies(server: Loopback) -> list[str]:
    return [r.body.decode() for r in server.requests]


def test_500_twice_then_200_delivers_each_message_exactly_once(
    hook: Loopback, tmp_path: Path
) -> None:
    box = _outbox(tmp_path, ["slack"])
    hook.script(500, 500)
    waits: list[float] = []
    report = send_chat(box, {"slack": f"{hook.url}/services/{SECRET}"}, Retry(sleep=waits.append))
    assert (report.sent, report.pending, report.errors) == (4, 0, [])
    assert waits == [1.0, 2.0]  # exponential backoff: no Retry-After on a 500
    bodies = _bodies(hook)
    assert len(bodies) == 6
    assert len(set(bodies)) == 4
    assert all(r.method == "POST" and r.path == f"/services/{SECRET}" for r in hook.requests)
    assert all(r.headers["Content-Type"] == "application/json" for r in hook.requests)
    assert send_chat(box, {"slack": f"{hook.url}/services/{SECRET}"}).sent == 0  # no repeats
    assert len(hook.requests) == 6


def test_429_waits_what_retry_after_asks(hook: Loopback, tmp_path: Path) -> None:
    box = _outbox(tmp_path, ["teams"])
    hook.script(429, retry_after="3")
    waits: list[float] = []
    report = send_chat(box, {"teams": f"{hook.url}/workflows/{SECRET}"}, Retry(sleep=waits.append))
    assert report.sent == 4
    assert waits == [3.0]
    hook.script(429, retry_after="3600")  # bounded: never waits longer than max_wait_s
    box2 = _outbox(tmp_path / "again", ["teams"])
    waits.clear()
    send_chat(box2, {"teams": f"{hook.url}/x"}, Retry(max_wait_s=5.0, sleep=waits.append))
    assert waits == [5.0]


def test_a_failed_delivery_leaves_the_rest_and_a_resend_delivers_them_once(
    hook: Loopback, tmp_path: Path
) -> None:
    box = _outbox(tmp_path, ["slack", "teams"])
    url = f"{hook.url}/services/{SECRET}"
    # the files alternate slack, teams; the third (slack's drop-A1) meets four 503s
    hook.script(200, 200, 503, 503, 503, 503, then=200)
    report = send_chat(box, {"slack": url, "teams": url}, Retry(sleep=lambda _s: None))
    # slack is given up for this pass (its later messages wait); teams carries on
    assert (report.sent, report.pending) == (5, 3)
    assert [p.name for p in chat_pending(box)] == [
        "003-slack-drop-A1.json",
        "005-slack-drop-A3.json",
        "007-slack-action-A1.json",
    ]
    assert SECRET not in " ".join(report.errors)
    assert "503" in report.errors[0]
    again = send_chat(box, {"slack": url, "teams": url}, Retry(sleep=lambda _s: None))
    assert (again.sent, again.pending) == (3, 0)
    bodies = _bodies(hook)
    # 8 distinct messages; the one the outage hit was posted 5 times (accepted the 5th), the
    # others once each
    assert len(bodies) == 12
    assert len(set(bodies)) == 8
    sent = json.loads((box / "sent.json").read_text())
    assert len(sent) == 8
    assert {v["tool"] for v in sent.values()} == {"slack", "teams"}


def test_the_webhook_url_never_appears_in_errors(hook: Loopback, tmp_path: Path) -> None:
    box = _outbox(tmp_path, ["slack"])

    def echo(r: object) -> tuple[int, dict[str, str], bytes]:
        return 404, {}, f"no_service for {getattr(r, 'path', '')}".encode()

    hook.respond = echo  # type: ignore[assignment]
    report = send_chat(
        box, {"slack": f"{hook.url}/services/{SECRET}"}, Retry(sleep=lambda _s: None)
    )
    assert report.sent == 0
    assert len(report.errors) == 1
    assert SECRET not in report.errors[0]
    assert "404 no_service" in report.errors[0]
    down = send_chat(box, {"slack": "http://127.0.0.1:9/services/" + SECRET}, Retry(attempts=1))
    assert SECRET not in down.errors[0]
    assert "ConnectError" in down.errors[0]


def test_webhook_urls_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHS_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/" + SECRET)
    monkeypatch.delenv("CHS_TEAMS_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("MY_TEAMS", "https://example.test/workflows/abc")
    cfg = _cfg(tmp_path)
    urls, missing = webhook_urls(cfg)  # type: ignore[arg-type]
    assert urls == {"slack": "https://hooks.slack.com/services/" + SECRET}
    assert missing == ["CHS_TEAMS_WEBHOOK_URL is not set, so teams messages wait in the outbox"]
    cfg = _cfg(tmp_path, '[notify.teams]\nwebhook_env = "MY_TEAMS"\n')
    assert webhook_urls(cfg) == ({"teams": "https://example.test/workflows/abc"}, [])  # type: ignore[arg-type]


def test_the_failure_message_names_the_cause_and_the_run() -> None:
    card = failure_card("2026-11-16", "1234-abcd", "brave-fox", "survey_responses: 80% invalid.")
    p = slack_payload(card)
    assert "Cause: survey_responses: 80% invalid." in p["blocks"][1]["text"]["text"]
    assert p["blocks"][2]["fields"][0]["text"] == "*Flow run*\nbrave-fox (1234-abcd)"


def test_a_webhook_named_twice_is_a_config_error(tmp_path: Path) -> None:
    from tasks.errors import ConfigError

    with pytest.raises(
        ConfigError, match="notify.slack: give either webhook_env or webhook_secret"
    ):
        _cfg(tmp_path, '[notify.slack]\nwebhook_env = "A"\nwebhook_secret = "b"\n')
