"""The account pages' parts: phrases, config marks, file names, and one page rendered.

The page is built from small frames shaped like a run's (scored row with ``m_``/``lost_``/``c_``
columns, actions with statuses, stored weeks) through the real template.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from tasks.config import Config, WindowsConfig
from tasks.report.accounts.context import PageData, page_context
from tasks.report.accounts.history import config_marks, trend_marks
from tasks.report.accounts.pages import PagePlan, page_accounts, page_file, page_href, write_pages
from tasks.report.accounts.phrases import PHRASES, describe
from tasks.report.cards import headline_cards
from tasks.report.charts import to_svg, trend_chart
from tasks.report.templates import environment
from tasks.schemas import DIMENSIONS

D = date(2026, 3, 2)
HOSTILE = "<script>alert('x')</script> & <b>bold</b>"


def _cfg(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "sources": {"accounts": {"uri": "accounts.csv"}},
            "output": {"dir": str(tmp_path / "out")},
            "scoring": {
                "measures": [
                    {"name": "license_utilisation", "dimension": "usage", "bands": [0, 0.3, 0.6, 0.9]},
                    {"name": "open_urgent_tickets", "dimension": "support", "direction": "lower", "bands": [0, 0.5, 1.5, 3]},
                    {"name": "nps_account", "dimension": "satisfaction", "bands": [-100, -20, 20, 70]},
                ]
            },
        }
    )  # fmt: skip


def test_seats_phrase_reads_like_a_csm_would_say_it() -> None:
    row = {"active_users_30d": 12, "seats": 50}
    w = WindowsConfig()
    assert describe("license_utilisation", 0.24, row, w) == "12 of 50 seats active in 30 days (24%)"
    assert describe("open_urgent_tickets", 1.0, {}, w) == "1 high or urgent ticket open"
    assert describe("nps_account", None, {}, w) == "no data"
    assert describe("my_own_measure", 3.5, {}, w) == "my own measure: 3.5"  # no entry: its name
    # every default measure has words of its own
    from tasks.defaults import default_measures

    assert {m["name"] for m in default_measures(purchase_model=True)} <= set(PHRASES)


def test_config_marks_name_the_weeks_whose_hash_changed() -> None:
    runs = pl.DataFrame(
        {
            "as_of": [D - timedelta(days=21), D - timedelta(days=14), D - timedelta(days=7), D],
            "config_hash": ["aaa", "aaa", "bbb", "zzz"],  # D's stored run is replaced by this one
        }
    )
    marks = config_marks(runs, D, "bbb")
    assert [m.as_of for m in marks] == [(D - timedelta(days=7)).isoformat()]
    assert "aaa → bbb" in marks[0].label
    assert config_marks(runs, D, "ccc")[-1].as_of == D.isoformat()  # this run changed it again
    assert config_marks(None, D, "ccc") == []  # no stored run: nothing to compare with
    dates = [(D - timedelta(days=7 * k)).isoformat() for k in (3, 2, 1, 0)]
    assert trend_marks(dates, marks) == [{"as_of": dates[2], "label": marks[0].label}]
    assert trend_marks(dates[:2], marks) == []  # a week the trend does not show: no mark


def test_page_files_stay_in_their_folder() -> None:
    assert page_file("A00001") == "A00001.html"
    assert page_file("../etc/x") == "..%2Fetc%2Fx.html"  # no separator: cannot leave accounts/
    assert page_href("a b%") == "a%2520b%2525.html"  # the link names the encoded file


def _run(tmp_path: Path) -> tuple[Config, dict[str, pl.DataFrame | None]]:
    scored = pl.DataFrame(
        {
            "account_id": ["A1", "A2", "A3"],
            "name": ["Acme", "Beta", "Calm"],
            "segment": ["at_risk", "neutral", "healthy"],
            "score": [31.0, 55.0, 90.0],
            "computed_score": [31.0, 55.0, 90.0],
            "score_delta_1w": [-9.0, 1.0, 0.0],
            "arr": [1000.0, 2000.0, 3000.0],
            "seats": [50, 10, 5],
            "active_users_30d": [12, 5, 5],
            "license_utilisation": [0.24, 0.5, 1.0],
            "open_urgent_tickets": [2.0, 0.0, 0.0],
            "nps_account": [-40.0, 10.0, 80.0],
            **{d: [30.0, 50.0, 90.0] for d in DIMENSIONS},
            # points of each measure (0-100) and what the account lost by it, weighted
            "m_license_utilisation": [20.0, 50.0, 100.0],
            "m_open_urgent_tickets": [40.0, 100.0, 100.0],
            "m_nps_account": [33.0, 60.0, 100.0],
            "lost_license_utilisation": [26.6667, 16.6667, 0.0],
            "lost_open_urgent_tickets": [20.0, 0.0, 0.0],
            "lost_nps_account": [22.3333, 13.3333, 10.0],
            "c_license_utilisation": [6.6667, 16.6667, 33.3],
            "c_open_urgent_tickets": [13.3333, 33.3333, 33.3],
            "c_nps_account": [11.0, 20.0, 23.4],
            "override_reason": [None, None, None],
        }
    )
    weeks = [D - timedelta(days=7 * k) for k in range(3, 0, -1)]
    series = pl.DataFrame(
        {
            "account_id": ["A1"] * 3,
            "as_of": weeks,
            "score": [50.0, 45.0, 40.0],
            **{d: [50.0, 45.0, 40.0] for d in DIMENSIONS},
        }
    )
    prev = scored.filter(pl.col("account_id") == "A1").with_columns(
        pl.lit(weeks[-1]).alias("as_of"),
        pl.lit(40.0).alias("usage"),
        pl.lit(10.0).alias("c_license_utilisation"),  # the utilisation cost 3.3 points this week
    )
    actions = pl.DataFrame(
        {
            "account_id": ["A1", "A1", "A2"],
            "action": ["Health-check call", "Escalate tickets", "Workshop"],
            "status": ["in_progress", "snoozed", "deferred"],
            "priority": ["high", "high", "medium"],
            "owner": ["csm@example.com"] * 3,
            "due_date": [D, D, D],
            "opened_on": [weeks[0], weeks[1], D],
            "reason": ["At risk", HOSTILE, "Seats unused"],
        }
    )
    surveys = pl.DataFrame(
        {
            "account_id": ["A1", "A1"],
            "survey": ["nps", "nps"],
            "score": [2.0, 3.0],
            "submitted_at": [datetime(2026, 2, 20), datetime(2025, 1, 1)],  # the second is too old
            "comment": [HOSTILE, "old news"],
        }
    )
    tickets = pl.DataFrame(
        {
            "account_id": ["A1", "A1"],
            "ticket_id": ["T-1", "T-2"],
            "opened_at": [datetime(2026, 2, 1), datetime(2026, 2, 2)],
            "resolved_at": [None, datetime(2026, 2, 3)],  # only T-1 is still open
            "priority": ["urgent", "low"],
            "status": ["open", "solved"],
        }
    )
    frames: dict[str, pl.DataFrame | None] = {
        "scored": scored,
        "series": series,
        "prev": prev,
        "actions": actions,
        "surveys": surveys,
        "tickets": tickets,
    }
    return _cfg(tmp_path), frames


def test_pages_for_at_risk_and_open_actions_only(tmp_path: Path) -> None:
    _, f = _run(tmp_path)
    assert f["scored"] is not None
    assert f["actions"] is not None
    # A1 is at risk; A2's only action is deferred (not worked this week), A3 is healthy
    assert page_accounts(f["scored"], f["actions"], None, "listed") == ["A1"]
    opened = f["actions"].with_columns(pl.lit("open").alias("status"))
    assert page_accounts(f["scored"], opened, None, "listed") == ["A1", "A2"]
    assert page_accounts(f["scored"], f["actions"], None, "all") == ["A1", "A2", "A3"]


def test_one_page_shows_history_points_lost_changes_and_actions(tmp_path: Path) -> None:
    cfg, frames = _run(tmp_path)
    data = PageData.of(cfg, D, frames, ["A1"], config_marks(None, D, "x"), {})
    ctx = page_context(data, "A1")
    assert ctx["history"]["weeks"] == 4  # three stored weeks and this one
    w = ctx["waterfall"]
    assert w["lost_total"] == 69.0 == round(100 - 31.0, 2)  # the steps add up to the points lost
    assert [s["label"] for s in w["steps"]][0] == "license utilisation (usage)"  # costliest first
    assert [(a["action"], a["status_label"]) for a in ctx["actions"]] == [
        ("Health-check call", "In progress"),
        ("Escalate tickets", "Snoozed"),
    ]
    changes = ctx["changes"]
    assert changes["measures"][0]["label"] == "license utilisation"
    assert changes["measures"][0]["text"] == "-3.3"
    assert {"name": "usage", "delta": "-10.0"} in changes["dimensions"]
    assert [t["ticket_id"] for t in ctx["tickets"]] == ["T-1"]
    assert [c["comment"] for c in ctx["comments"]] == [HOSTILE]
    words = {m["name"]: m["words"] for m in ctx["measures"]}
    assert words["license_utilisation"] == "12 of 50 seats active in 30 days (24%)"


def test_hostile_text_is_escaped_and_pages_have_no_script(tmp_path: Path) -> None:
    cfg, frames = _run(tmp_path)
    scored = frames["scored"]
    assert scored is not None
    frames["scored"] = scored.with_columns(pl.lit(HOSTILE).alias("name"))
    ids = ["A1", "A2", "A3"]
    plan = PagePlan.of(ids, cfg, D)
    data = PageData.of(cfg, D, frames, ids, [], {a: page_href(a) for a in ids})
    assert write_pages(data, tmp_path / "stage") == 3
    for a in ids:
        html = (tmp_path / "stage" / "accounts" / f"{a}.html").read_text(encoding="utf-8")
        assert "<script" not in html.lower()
        assert "&lt;script&gt;" in html  # the name (and A1's comment) shown, as text
        assert html.count("<svg") == 1 + len(DIMENSIONS) + 1  # history, six dimensions, waterfall
    assert plan.urls["A1"] == (tmp_path / "out" / D.isoformat() / "accounts" / "A1.html").as_uri()
    with_base = PagePlan.of(ids, cfg.model_copy(update={"report": cfg.report.model_copy(update={"base_url": "https://cs.example.com/chs/"})}), D)  # fmt: skip
    assert with_base.urls["A2"] == "https://cs.example.com/chs/2026-03-02/accounts/A2.html"
    assert plan.hrefs["A3"] == "accounts/A3.html"


def test_kpi_header_shows_cac_when_kpis_have_it() -> None:
    base = {"accounts_active": 10, "cac": None, "cac_new_accounts": None, "clv_to_cac": None}
    labels = [c["label"] for c in headline_cards(base, {})]  # type: ignore[arg-type]
    assert "CAC" not in labels
    assert "CLV : CAC" not in labels
    spent = {**base, "cac": 1250.0, "cac_new_accounts": 4, "clv_to_cac": 3.2}
    cards = {c["label"]: c for c in headline_cards(spent, {"cac": 1500.0})}  # type: ignore[arg-type]
    assert cards["CAC"]["value"] == "1,250"
    assert cards["CAC"]["tone"] == "good"  # cheaper than last week
    assert "4 new accounts" in cards["CAC"]["note"]
    assert cards["CLV : CAC"]["value"] == "3.2×"
    assert cards["CAC"]["delta_text"] == "▼ -250 vs last week"


def test_chs_run_takes_pages_all() -> None:
    from flows.cli.parser import parser

    assert parser().parse_args(["run"]).pages == "listed"
    assert parser().parse_args(["run", "--pages", "all"]).pages == "all"


def test_a_parent_at_risk_gets_a_page_listing_its_children(tmp_path: Path) -> None:
    cfg, frames = _run(tmp_path)
    scored = frames["scored"]
    assert scored is not None
    # A3 (healthy itself) is the parent of A1 and A2; their ARR-weighted roll-up is at risk
    frames["accounts"] = pl.DataFrame(
        {"account_id": ["A1", "A2", "A3"], "parent_account_id": ["A3", "A3", None]}
    )
    frames["rollup"] = pl.DataFrame(
        {
            "account_id": ["A3"],
            "children_n": [2],
            "score": [38.0],
            "segment": ["at_risk"],
            "share_at_risk": [1 / 3],
            "method": ["arr_weighted"],
            "top_drivers": ["A1: license_utilisation (-26.7)"],
        }
    )
    no_work = pl.DataFrame(schema={"account_id": pl.String, "status": pl.String})
    assert page_accounts(scored, no_work, frames["rollup"], "listed") == ["A1", "A3"]
    data = PageData.of(cfg, D, frames, ["A1", "A3"], [], {"A1": "A1.html", "A3": "A3.html"})
    ctx = page_context(data, "A3")
    # worst child first, linked when it has a page of its own
    assert [(c["account_id"], c["score"], c["href"]) for c in ctx["children"]] == [
        ("A1", 31.0, "A1.html"),
        ("A2", 55.0, None),
    ]
    html = environment().get_template("account.html.j2").render(**ctx)
    assert "Roll-up score 38 (arr_weighted) over 2 children; 33% of their ARR is at risk." in html
    assert '<a href="A1.html">Acme</a>' in html


def test_the_trend_draws_a_rule_for_each_shown_config_change() -> None:
    """The report's trend (Vega-Altair) marks a changed week; weeks it does not show get none."""
    cfg = Config.model_validate({"sources": {"accounts": {"uri": "a.csv"}}})
    pts: list[tuple[str, float | None]] = [
        ("2026-10-05", 60.0), ("2026-10-12", 61.0), ("2026-10-19", 59.5), ("2026-10-26", 62.0)
    ]  # fmt: skip
    plain = trend_chart(pts, cfg)
    marked = trend_chart(pts, cfg, [("2026-10-19", "config changed (a → b)")])
    unseen = trend_chart(pts, cfg, [("2025-01-05", "config changed (x → y)")])
    assert plain is not None
    assert marked is not None
    assert unseen is not None
    assert "config_mark" not in to_svg(plain)
    assert "config_mark" not in to_svg(unseen)
    svg = to_svg(marked)
    group = svg[svg.index("config_mark_marks") :]
    assert group[: group.index("</g>")].count("<line") == 1
    assert "config changed in 1 of these weeks" in marked["alt"]
