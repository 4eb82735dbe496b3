"""The demo report in a real browser: headless Chromium renders, screenshots and prints it.

The report is built from the session demo by calling the pipeline's functions directly (no
Prefect), over six weeks so the trend, movement and drops have data. Skips only when no
Chromium is installed (``make test`` installs Debian's ``chromium`` when run as root).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.actions import recommend
from tasks.config import Config, load_config
from tasks.features.build import build_features
from tasks.kpis import compute_kpis
from tasks.outputs import validation_json
from tasks.report.context import ReportInputs, build_context
from tasks.report.templates import render_report
from tasks.schemas import DATASETS
from tasks.score import add_trends, score_accounts
from tasks.sources.plan import Window
from tasks.sources.read import extract_dataset
from tasks.validate import validate_dataset
from tests.conftest import DEMO_END

HOSTILE = "<script>alert(1)</script> & Co"
SECTIONS = (
    "summary",
    "kpis",
    "segments",
    "distribution",
    "trend",
    "at-risk",
    "drops",
    "opportunities",
    "insufficient",
    "data-quality",
    "method",
)
# Runs inside the page after it has laid out; writes what it measured into the DOM.
PROBE = """<script>
(() => {
  const box = (el) => el.getBoundingClientRect();
  const result = {
    scripts: document.scripts.length,
    images: document.images.length,
    broken_images: [...document.images].filter((i) => !i.complete || i.naturalWidth === 0).length,
    charts: [...document.querySelectorAll("svg")].map((s) => [box(s).width, box(s).height]),
    chart_marks: document.querySelectorAll("svg path, svg rect, svg line").length,
    axis_titles: [...document.querySelectorAll("svg .role-axis-title text")].map((t) => t.textContent),
    hidden_sections: SECTIONS.filter((id) => !document.getElementById(id) || box(document.getElementById(id)).height < 20),
    page_width: document.documentElement.scrollWidth,
    title: document.title,
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
})();
</script>
""".replace("SECTIONS", json.dumps(list(SECTIONS)))


def chromium() -> str | None:
    """Return the Chromium binary: Debian's /usr/bin/chromium, else one on PATH."""
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
        None,
    )


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [binary, *flags, *args], capture_output=True, timeout=90, check=True, cwd=profile.parent
    )


def _week(
    cfg: Config, day: Any, prev: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], dict[str, Any], pl.DataFrame]:
    run_time = datetime.combine(day + timedelta(days=1), datetime.min.time())
    window = Window(day, run_time)
    raw = {n: extract_dataset(n, cfg, window) for n in DATASETS if n in cfg.sources}
    valid = {"accounts": validate_dataset(raw["accounts"], "accounts", cfg, run_time)}
    ids = valid["accounts"].accepted["account_id"].to_list()
    for name, df in raw.items():
        if name != "accounts":
            valid[name] = validate_dataset(df, name, cfg, run_time, account_ids=ids)
    data = {k: v.accepted for k, v in valid.items()}
    scored = add_trends(score_accounts(build_features(data, cfg, day), cfg), prev, None, cfg)
    kpis = compute_kpis(data, scored, cfg, day, None)
    return (
        scored,
        recommend(scored, cfg, day),
        kpis,
        validation_json(valid),
        data["survey_responses"],
    )


@pytest.fixture(scope="module")
def demo_report(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Score six weeks of the demo and render the last week's report (one name is hostile)."""
    cfg = load_config(demo_template / "chs.toml")
    # the suites' Polars translation: the same checks, without GX start-up per week
    cfg = cfg.model_copy(
        update={"validation": cfg.validation.model_copy(update={"gx_max_rows": 0})}
    )
    history: list[dict[str, Any]] = []
    prev = None
    for weeks_back in range(5, 0, -1):
        prev, _, kpis, _, _ = _week(cfg, DEMO_END - timedelta(days=7 * weeks_back), prev)
        history.append(kpis)
    scored, actions, kpis, validation, surveys = _week(cfg, DEMO_END, prev)
    top = scored.filter(pl.col("segment") == "at_risk").sort("arr", descending=True)["account_id"][
        0
    ]
    scored = scored.with_columns(
        pl.when(pl.col("account_id") == top).then(pl.lit(HOSTILE)).otherwise("name").alias("name")
    )
    ctx = build_context(
        ReportInputs(
            cfg, DEMO_END, scored, actions, kpis, validation, history[-1], prev, history, surveys
        )
    )
    folder = tmp_path_factory.mktemp("report")
    (folder / "report.html").write_text(render_report(ctx), encoding="utf-8")
    return folder / "report.html"


def content_rows(png: bytes) -> tuple[int, int, int]:
    """Return (width, height, rows that are not one flat colour) of an 8-bit PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert depth == 8
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    idat, pos = b"", 8
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            idat += png[pos + 8 : pos + 8 + n]
        pos += 12 + n
    raw, stride = zlib.decompress(idat), 1 + width * bpp
    # Whatever the row filter, a flat row over a flat row filters to one repeated byte after
    # its first pixel; drawn rows (text, bars, rules) do not.
    busy = 0
    for y in range(height):
        payload = raw[y * stride + 1 + bpp : (y + 1) * stride]
        busy += payload.count(payload[:1]) != len(payload)
    return width, height, busy


@pytest.mark.slow
def test_demo_report_renders_in_chromium(demo_report: Path, tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("Chromium not found (apt-get install chromium; `make test` does it as root)")
    html = demo_report.read_text(encoding="utf-8")
    assert "<script" not in html.lower()  # readable without JavaScript: there is none
    assert re.search(r"""(src|href)=["']?(https?:)?//""", html) is None  # nothing remote

    shot = tmp_path / "report.png"
    run_chromium(
        binary,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1280,3000",
        demo_report.as_uri(),
    )
    width, height, busy = content_rows(shot.read_bytes())
    assert (width, height) == (1280, 3000)
    assert busy > 0.3 * height, f"only {busy} of {height} screenshot rows show anything"

    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(
        binary, tmp_path / "profile-dom", "--window-size=1280,3000", "--dump-dom", probed.as_uri()
    ).stdout
    text = dom.decode("utf-8")
    for section in SECTIONS:
        assert f'id="{section}"' in text, section
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in text  # shown as text, not run
    found = re.search(r'<pre id="probe">(.*?)</pre>', text, re.S)
    assert found, "the probe did not run"
    probe = json.loads(unescape(found.group(1)))
    assert probe["scripts"] == 1  # only the probe: the hostile name did not become a script
    assert probe["broken_images"] == 0
    assert len(probe["charts"]) >= 3
    assert all(w > 200 and h > 80 for w, h in probe["charts"])
    assert probe["chart_marks"] > 20
    # every library-drawn chart names its axes
    for title in (
        "Health score (10-point bins)",
        "Accounts",
        "Week ending",
        "Mean score",
        "Share of accounts",
    ):
        assert title in probe["axis_titles"], title
    assert probe["hidden_sections"] == []
    assert probe["page_width"] <= 1280  # no sideways scrolling at 1280 px
    assert probe["title"].startswith("Customer health")

    pdf = tmp_path / "report.pdf"
    run_chromium(
        binary,
        tmp_path / "profile-pdf",
        f"--print-to-pdf={pdf}",
        "--no-pdf-header-footer",
        demo_report.as_uri(),
    )
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
    assert pages >= 2  # printable: the report flows over several A4 pages
