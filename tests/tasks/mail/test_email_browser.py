"""The demo's e-mails in a real browser, their digest sections and their size budget.

Two weeks of the demo are scored and run through the real lifecycle (so there are new,
carried, deferred and held-out actions), then the stakeholder e-mail and the digests are
composed as a run composes them. Headless Chromium opens each HTML part, its CID images
replaced by the attached PNG files, at 800 px and at a 390 px phone width.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from html import escape, unescape
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import vl_convert

from tasks.actions import recommend
from tasks.config import Config, load_config
from tasks.lifecycle import Advanced, advance, empty_state
from tasks.mail.compose import ATTACHMENTS, Emails, build_emails, draw_digest_charts
from tasks.mail.digest import sectioned
from tasks.mail.message import MAIL_POLICY
from tasks.report.charts import PNG_SCALE, vega_renders
from tasks.report.context import ReportInputs, build_context
from tests.conftest import DEMO_END
from tests.tasks.report.test_report_browser import _week, chromium, run_chromium

SENDER = "Customer Health <health@example.com>"
# Chromium's headless window is at least 500 px wide, so the e-mail is laid out in an iframe
# of the width under test (srcdoc: same origin, the probe can look inside) and measured there.
PROBE = """<script>
window.addEventListener("load", () => {
  const frame = document.getElementById("mail");
  const doc = frame.contentDocument, win = frame.contentWindow;
  const imgs = [...doc.images];
  const result = {
    inner_width: win.innerWidth,
    scroll_width: doc.scrollingElement.scrollWidth,
    images: imgs.length,
    without_alt: imgs.filter((i) => !(i.getAttribute("alt") || "").trim()).length,
    broken: imgs.filter((i) => !i.complete || i.naturalWidth === 0).length,
    widest: Math.max(...[...doc.querySelectorAll("body *")].map((e) => e.getBoundingClientRect().right)),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


@dataclass
class DemoMail:
    cfg: Config
    scored: pl.DataFrame
    advanced: Advanced
    context: Any
    emails: Emails


def _fast(cfg: Config) -> Config:
    # the suites' Polars translation: the same checks, without GX start-up per week; and a
    # capacity of 6 new actions per owner: the seeded 200-account demo then has new, carried and
    # deferred actions in its second week (the default 10 defers none there)
    return cfg.model_copy(
        update={
            "validation": cfg.validation.model_copy(update={"gx_max_rows": 0}),
            "playbook_settings": cfg.playbook_settings.model_copy(update={"max_new_per_owner": 6}),
        }
    )


@pytest.fixture(scope="module")
def demo_mail(demo_template: Path) -> DemoMail:
    """Two demo weeks through score, recommend and the lifecycle; the second week's e-mails."""
    cfg = _fast(load_config(demo_template / "chs.toml"))
    before = DEMO_END - timedelta(days=7)
    prev, fired_prev, kpis_prev, _, _ = _week(cfg, before, None)
    first = advance(empty_state(), fired_prev, prev, cfg, before)
    scored, _, kpis, validation, surveys = _week(cfg, DEMO_END, prev)
    second = advance(first.state, recommend(scored, cfg, DEMO_END), scored, cfg, DEMO_END)
    ctx = build_context(
        ReportInputs(
            cfg,
            DEMO_END,
            scored,
            second.work,
            kpis,
            validation,
            kpis_prev,
            prev,
            [kpis_prev],
            surveys,
        )
    )
    emails = build_emails(scored, second.work, ctx, cfg, SENDER, second.state)
    return DemoMail(cfg, scored, second, ctx, emails)


def _open_in_browser(msg: EmailMessage, folder: Path, width: int) -> dict[str, Any]:
    html = msg.get_body(("html",))
    assert html is not None
    text = html.get_content()
    for part in msg.walk():
        if part.get_content_type() == "image/png":
            cid = str(part["Content-ID"]).strip("<>")
            (folder / part.get_filename()).write_bytes(part.get_content())
            text = text.replace(f"cid:{cid}", part.get_filename())
    assert "cid:" not in text  # every image referenced is attached
    page = folder / f"email-{width}.html"
    frame = (
        f'<!DOCTYPE html><html><body style="margin:0"><iframe id="mail" width="{width}" '
        f'height="1800" style="border:0;display:block" srcdoc="{escape(text)}"></iframe>'
        f"{PROBE}</body></html>"
    )
    page.write_text(frame, encoding="utf-8")
    binary = chromium()
    assert binary is not None
    dom = run_chromium(
        binary,
        folder / f"profile-{width}",
        "--window-size=1024,2000",
        "--dump-dom",
        page.as_uri(),
    ).stdout.decode("utf-8")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    return dict(json.loads(unescape(found.group(1))))


@pytest.mark.slow
@pytest.mark.parametrize("width", [800, 390])
def test_the_emails_fit_the_screen_and_every_image_has_alt_text(
    demo_mail: DemoMail, tmp_path: Path, width: int
) -> None:
    if chromium() is None:
        pytest.skip("Chromium not found (apt-get install chromium; `make test` does it as root)")
    messages = dict(demo_mail.emails.messages)
    digest = next(m for k, m in messages.items() if k.startswith("digest-"))
    for name, msg in (("stakeholders", messages["stakeholders"]), ("digest", digest)):
        folder = tmp_path / name
        folder.mkdir()
        probe = _open_in_browser(msg, folder, width)
        assert probe["inner_width"] == width
        assert probe["scroll_width"] <= probe["inner_width"], (name, probe)  # no sideways scroll
        assert probe["widest"] <= width + 0.5, (name, probe)
        assert probe["images"] >= (3 if name == "stakeholders" else 1)
        assert probe["without_alt"] == 0
        assert probe["broken"] == 0


def test_the_stakeholder_email_has_every_chart_of_the_report(demo_mail: DemoMail) -> None:
    msg = dict(demo_mail.emails.messages)["stakeholders"]
    html = msg.get_body(("html",))
    assert html is not None
    alts = re.findall(r'<img [^>]*alt="([^"]+)"', html.get_content())
    ctx = demo_mail.context
    expected = [c for c in (ctx["histogram"], ctx["trend"], ctx["segment_mix"]) if c]
    assert len(expected) == 3  # two weeks of history: the trend and the segment mix exist
    assert [unescape(a) for a in alts] == [c["alt"] for c in expected]
    assert all("<svg" in c["svg"] and 'role="img"' in c["svg"] for c in expected)


def _csv(msg: EmailMessage) -> pl.DataFrame:
    part = next(msg.iter_attachments())
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return pl.read_csv(io.BytesIO(data))


def test_digests_group_actions_into_sections_and_never_show_holdouts(
    demo_mail: DemoMail,
) -> None:
    state = demo_mail.advanced.state
    held = set(state.filter(pl.col("status") == "holdout")["action_id"])
    assert held, "the demo holds some actions out"
    shown = sectioned(state, DEMO_END, DEMO_END - timedelta(days=7))
    assert held.isdisjoint(shown["action_id"])
    assert {"new", "carried", "deferred"} <= set(shown["section"])
    digests = [m for k, m in demo_mail.emails.messages if k.startswith("digest-")]
    assert digests
    listed: set[str] = set()
    for msg in digests:
        rows = _csv(msg)
        assert not [c for c in rows.columns if c.endswith("_right")]  # no column twice
        listed |= set(rows["action_id"])
        assert set(rows["section"]) <= {"new", "carried", "overdue", "deferred"}
        html = msg.get_body(("html",))
        assert html is not None
        body = html.get_content()
        for title in ("New this week", "Carried from earlier weeks", "Overdue", "Deferred"):
            assert title in body
        assert "Closed since the last run" in body
    assert held.isdisjoint(listed)  # no digest lists a held-out action
    visible = set(shown.filter(pl.col("section") != "closed")["action_id"])
    assert listed == visible & set(
        shown.join(demo_mail.scored.select("account_id", "csm_email"), on="account_id").filter(
            pl.col("csm_email").is_not_null()
        )["action_id"]
    )


def test_closed_actions_appear_once_in_the_section_of_closed_ones(demo_mail: DemoMail) -> None:
    state = demo_mail.advanced.state
    one = state.filter(pl.col("status") == "open").head(2)
    done = one.with_columns(
        pl.Series("status", ["done", "holdout"]), pl.lit(DEMO_END).alias("closed_on")
    )
    rows = sectioned(done, DEMO_END, DEMO_END - timedelta(days=7))
    assert rows["section"].to_list() == ["closed"]  # the hold-out one is dropped
    older = done.with_columns(pl.lit(DEMO_END - timedelta(days=8)).alias("closed_on"))
    assert sectioned(older, DEMO_END, DEMO_END - timedelta(days=7)).height == 0


def test_csvs_over_the_size_budget_are_written_to_the_folder_and_linked(
    demo_mail: DemoMail,
) -> None:
    cfg = demo_mail.cfg
    small = cfg.model_copy(
        update={"email": cfg.email.model_copy(update={"attach_max_bytes": 2000})}
    )
    emails = build_emails(
        demo_mail.scored,
        demo_mail.advanced.work,
        demo_mail.context,
        small,
        SENDER,
        demo_mail.advanced.state,
    )
    stake = dict(emails.messages)["stakeholders"]
    attached = [a.get_filename() for a in stake.iter_attachments()]
    written = {p for p in emails.files if "actions-" not in p}
    assert written, "the segment lists are over 2,000 bytes"
    assert not set(attached) & {p.rpartition("/")[2] for p in written}
    folder = str(cfg.out_dir / DEMO_END.isoformat() / ATTACHMENTS)
    text = stake.get_body(("plain",))
    assert text is not None
    assert folder in " ".join(text.get_content().split())
    assert "attach_max_bytes" in text.get_content()
    assert sum(len(emails.files[p]) for p in written) > 2000
    # within the default budget everything is attached and nothing is written
    assert demo_mail.emails.files == {}
    full = dict(demo_mail.emails.messages)["stakeholders"]
    assert len(list(full.iter_attachments())) >= 3


def _images(msg: EmailMessage) -> list[bytes]:
    return [p.get_content() for p in msg.walk() if p.get_content_type() == "image/png"]


def test_the_emails_render_one_chart_per_digest_and_none_for_the_report_charts(
    demo_mail: DemoMail,
) -> None:
    ctx = demo_mail.context
    before = vega_renders()
    emails = build_emails(
        demo_mail.scored,
        demo_mail.advanced.work,
        ctx,
        demo_mail.cfg,
        SENDER,
        demo_mail.advanced.state,
    )
    digests = [m for k, m in emails.messages if k.startswith("digest-")]
    assert len(digests) >= 2
    # the stakeholder e-mail's three charts are the report's SVGs rasterised: no Vega render
    assert vega_renders() - before == len(digests)
    stake = _images(dict(emails.messages)["stakeholders"])
    report = [c for c in (ctx["histogram"], ctx["trend"], ctx["segment_mix"]) if c]
    assert stake == [vl_convert.vegalite_to_png(c["spec"], scale=PNG_SCALE) for c in report]
    assert all(len(_images(m)) == 1 for m in digests)


def test_no_chart_is_drawn_for_emails_a_run_does_not_build(demo_mail: DemoMail) -> None:
    cfg = demo_mail.cfg
    quiet = cfg.model_copy(
        update={"report": cfg.report.model_copy(update={"recipients": [], "csm_digests": False})}
    )
    before = vega_renders()
    assert draw_digest_charts(demo_mail.scored, quiet) == {}
    emails = build_emails(
        demo_mail.scored, demo_mail.advanced.work, demo_mail.context, quiet, SENDER
    )
    assert emails.messages == []
    assert vega_renders() == before


def test_each_multipart_has_its_own_random_boundary_and_reads_back_whole(
    demo_mail: DemoMail,
) -> None:
    seen: set[str] = set()
    for _, msg in demo_mail.emails.messages:
        parts = [p for p in msg.walk() if p.is_multipart()]
        bounds = [str(p.get_boundary()) for p in parts]
        assert all(b.startswith("chs-") for b in bounds)
        assert seen.isdisjoint(bounds)
        seen |= set(bounds)
        back = message_from_bytes(msg.as_bytes(), policy=MAIL_POLICY)
        assert [p.get_content_type() for p in back.walk()] == [
            p.get_content_type() for p in msg.walk()
        ]
        assert _images(back) == _images(msg)
