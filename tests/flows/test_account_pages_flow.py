"""End to end: the weekly flow writes a page per listed account, linked and rendered.

Three weeks are back-filled under one config and the weekly run of ``DEMO_END`` uses another
(its title changed), so the pages and the report mark a config change. Every account that
answered a survey left a hostile comment.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import polars as pl
import pytest

from flows.backfill import backfill_flow
from flows.params import BackfillParams, WeeklyParams
from flows.weekly import weekly_flow
from tests.conftest import DEMO_END
from tests.tasks.report.test_report_browser import chromium, run_chromium

pytestmark = pytest.mark.slow
HOSTILE = "<script>alert('pwned')</script> great & terrible"
DAY = DEMO_END.isoformat()
# Runs inside a page after layout and writes what it measured into the DOM.
PROBE = """<script>
(() => {
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    scripts: document.scripts.length,
    charts: [...document.querySelectorAll("svg")].map((s) => {
      const b = s.getBoundingClientRect();
      return [b.width, b.height, s.querySelectorAll("polyline, rect, circle").length];
    }),
  });
  document.body.appendChild(out);
})();
</script>
"""


def _hostile_comments(folder: Path) -> None:
    path = folder / "surveys" / "nps.csv"
    with path.open(encoding="utf-8") as f:
        accounts = sorted({r["Account"] for r in csv.DictReader(f)})
    when = f"{DEMO_END - timedelta(days=2)} 10:00:00"
    with path.open("a", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        for i, a in enumerate(accounts):
            w.writerow([f"RX{i:05d}", a, "nps", 7, when, f"{a}-UX", HOSTILE])


@pytest.fixture(scope="module")
def demo_run(
    demo_template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> Path:
    """Back-fill three weeks, change the config, run the weekly flow; return the config."""
    folder = tmp_path_factory.mktemp("pages") / "demo"
    shutil.copytree(demo_template, folder)
    _hostile_comments(folder)
    config = folder / "chs.toml"
    start, end = DEMO_END - timedelta(days=21), DEMO_END - timedelta(days=7)
    backfill_flow(BackfillParams(config_path=str(config), start=start, end=end))
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('title = "Customer health"', 'title = "Health"'), "utf-8")
    weekly_flow(WeeklyParams(config_path=str(config), as_of=DEMO_END))
    return config


def _out(config: Path) -> Path:
    return config.parent / "out" / DAY


def _listed(out: Path) -> set[str]:
    scores = pl.read_csv(out / "scores.csv", infer_schema_length=0)
    actions = pl.read_csv(out / "actions.csv", infer_schema_length=0)
    at_risk = set(scores.filter(pl.col("segment") == "at_risk")["account_id"])
    worked = set(actions.filter(pl.col("status").is_in(["open", "in_progress"]))["account_id"])
    # an action may outlive its account's last score (it churned): a page needs this week's row
    return (at_risk | worked) & set(scores["account_id"])


def test_pages_for_every_listed_account_and_no_others(demo_run: Path) -> None:
    out = _out(demo_run)
    pages = {p.stem for p in (out / "accounts").glob("*.html")}
    scores = pl.read_csv(out / "scores.csv", infer_schema_length=0)
    at_risk = set(scores.filter(pl.col("segment") == "at_risk")["account_id"])
    assert at_risk, "the demo has at-risk accounts"
    assert pages == _listed(out)
    assert len(pages) < scores.height  # without --pages all, not every account


def test_pages_have_no_script_and_show_comments_as_text(demo_run: Path) -> None:
    out = _out(demo_run)
    shown = 0
    for page in (out / "accounts").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html.lower(), page.name
        shown += "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; great &amp; terrible" in html
    assert shown > 0  # the hostile comment is on the pages of those who gave it, as text
    assert "<script" not in (out / "report.html").read_text(encoding="utf-8").lower()


def test_one_page_has_its_history_points_lost_and_actions(demo_run: Path) -> None:
    out = _out(demo_run)
    scores = pl.read_csv(out / "scores.csv")
    actions = pl.read_csv(out / "actions.csv", infer_schema_length=0)
    scored = scores.filter(pl.col("score").is_not_null() & pl.col("segment").eq("at_risk"))
    row = scored.sort("arr", descending=True).row(0, named=True)
    html = (out / "accounts" / f"{row['account_id']}.html").read_text(encoding="utf-8")
    # three back-filled weeks and this one, in the chart and in the table
    assert "<h2>Score over 4 weeks</h2>" in html
    history = html.split('<section id="history">')[1].split("</section>")[0]
    assert history.split("</svg>")[0].count("<circle") == 4
    lost, left = map(float, re.findall(r"([\d.]+) points lost in all, leaving the model's score of (\d+\.\d)", html)[0])  # fmt: skip
    assert left == pytest.approx(row["score"], abs=0.05)
    assert lost + left == pytest.approx(100.0, abs=0.05)
    waterfall = html.split('<section id="drivers">')[1].split("</svg>")[0]
    steps = [float(v) for v in re.findall(r"<title>[^<]*: −([\d.]+)</title>", waterfall)]
    assert steps
    assert sum(steps) == pytest.approx(lost, abs=0.05 * len(steps))  # each step shown to 0.1
    own = actions.filter(pl.col("account_id") == row["account_id"])
    assert own.height > 0
    section = html.split('<section id="actions">')[1].split("</section>")[0]
    for a in own.iter_rows(named=True):
        assert f"<strong>{a['action']}</strong>" in section
    assert re.search(r"<td>(Open|In progress|Snoozed|Deferred \(owner at capacity\))", section)
    # the weekly run's config differs from the back-fill's: marked on the page and the report
    assert f"{DAY}: scoring config changed" in html
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "config_mark_marks" in report  # the trend's dashed rule (Vega names its group so)
    assert "Dashed purple lines mark weeks where the scoring config changed" in report


def test_report_and_digests_link_the_pages(demo_run: Path) -> None:
    out = _out(demo_run)
    report = (out / "report.html").read_text(encoding="utf-8")
    at_risk = report.split('<section id="at-risk">')[1].split("</section>")[0]
    linked = re.findall(r'<a href="accounts/([^"]+)\.html">', at_risk)
    assert linked
    assert all((out / "accounts" / f"{a}.html").is_file() for a in linked)
    digests = sorted((out / "outbox").glob("*-digest-*.eml"))
    assert digests
    msg = BytesParser(policy=policy.default).parsebytes(digests[0].read_bytes())
    body = msg.get_body(("html",))
    assert body is not None
    urls = re.findall(r'href="(file://[^"]+/accounts/[^"]+\.html)"', body.get_content())
    assert urls
    assert all(Path(u.removeprefix("file://")).is_file() for u in urls)  # the published pages


def test_a_page_renders_its_charts_in_chromium(demo_run: Path, tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("Chromium not found (apt-get install chromium; `make test` does it as root)")
    page = sorted((_out(demo_run) / "accounts").glob("*.html"))[0]
    probed = page.parent / "probed.html"  # beside the page: its relative links still resolve
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    try:
        dom = run_chromium(
            binary, tmp_path / "profile", "--window-size=1280,3000", "--dump-dom", probed.as_uri()
        )
    finally:
        probed.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout.decode())
    assert found, "the probe did not run"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["scripts"] == 1  # the probe alone: the page itself has none
    charts = result["charts"]
    assert len(charts) == 8  # the score history, six dimensions, the waterfall
    for width, height, marks in charts:
        assert width > 0
        assert height > 0
        assert marks > 0


def test_pages_all_writes_every_scored_account(demo_run: Path) -> None:
    weekly_flow(WeeklyParams(config_path=str(demo_run), as_of=DEMO_END, pages="all"))
    out = _out(demo_run)
    scores = pl.read_csv(out / "scores.csv", infer_schema_length=0)
    pages = {p.stem for p in (out / "accounts").glob("*.html")}
    assert pages == set(scores["account_id"])
