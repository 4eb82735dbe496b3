"""Text signals: language, sentiment, themes, the text measures and their evidence."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks.config import TextConfig, parse_config
from tasks.features.build import build_features
from tasks.text.annotate import annotate_frame, texts_of
from tasks.text.evidence import truncate, truncated, voice_kpis
from tasks.text.models import read_text
from tasks.text.themes import themes_expr

AS_OF = date(2026, 3, 31)
CFG = parse_config(
    {"sources": {"accounts": {"uri": "a.csv"}, "feedback": {"uri": "f.csv"}}}, Path()
)


def _runs_clean(code: str) -> None:
    """Run ``code`` in a fresh interpreter (its own imports and threads); it must exit 0."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def _accounts() -> pl.DataFrame:
    return pl.DataFrame(
        {"account_id": ["a", "b", "c"], "name": ["A", "B", "C"], "seats": [10, 20, 5]}
    ).with_columns(
        contract_start=pl.lit(None, pl.Date),
        renewal_date=pl.lit(None, pl.Date),
        churned_at=pl.lit(None, pl.Date),
        status=pl.lit("active"),
    )


def _feedback(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "feedback_id": [f"f{i}" for i in range(len(rows))],
            "account_id": [r[0] for r in rows],
            "channel": [r[1] for r in rows],
            "text": [r[2] for r in rows],
            "created_at": [datetime.fromisoformat(r[3]) for r in rows],
            "rating": [None] * len(rows),
        },
        schema_overrides={"rating": pl.Float64, "created_at": pl.Datetime("us")},
    )


def test_english_and_chinese_are_scored_other_languages_are_not() -> None:
    good = read_text("The new dashboards are excellent and we love them.", 0.5)
    bad = read_text("Terrible release, everything crashes and we are very disappointed.", 0.5)
    zh_bad = read_text("客服一直不回复，服务太差了，非常失望。", 0.5)
    de = read_text("Der Support antwortet nicht und die Software läuft sehr langsam.", 0.5)
    assert (good.language, bad.language, zh_bad.language, de.language) == ("en", "en", "zh", "de")
    assert good.sentiment is not None
    assert good.sentiment > 0.5
    assert bad.sentiment is not None
    assert bad.sentiment < -0.5
    assert zh_bad.sentiment is not None
    assert zh_bad.sentiment < -0.5
    assert de.sentiment is None  # no German model: never a wrong score


def test_labels_and_themes_of_a_frame() -> None:
    df = _feedback(
        [
            (
                "a",
                "review",
                "The price is too expensive, support never replied, we are unhappy.",
                "2026-03-01",
            ),
            ("a", "review", "Der Support antwortet nicht und alles läuft langsam.", "2026-03-02"),
            ("a", "review", "价格太贵，还重复收费，很不满意。", "2026-03-03"),
        ]
    )
    out = annotate_frame(df, pl.col("text"), TextConfig())
    assert out["_text_label"].to_list() == ["negative", "language_unsupported", "negative"]
    assert out["_text_themes"].to_list() == [["pricing", "support"], ["support"], ["pricing"]]


def test_support_is_a_topic_not_praise() -> None:
    reading = read_text("Support never replied to our ticket for a week.", 0.5)
    assert reading.sentiment is not None
    assert reading.sentiment <= 0


def test_keywords_match_whole_words_or_prefixes() -> None:
    texts = pl.Series(["Pricing changed", "bugs everywhere", "a debugger", "UI is clunky", None])
    got = pl.select(themes_expr(pl.lit(texts))).to_series().to_list()
    # "debugger" is not the word "bug*"; a missing text has no theme
    assert got == [["pricing"], ["reliability"], [], ["usability"], []]


def test_text_measures_count_only_scored_texts_and_never_invent_neutral() -> None:
    fb = _feedback(
        [
            ("a", "review", "Excellent product, we love it.", "2026-03-20"),
            ("a", "complaint", "Awful outage, we lost data, terrible.", "2026-03-25"),
            ("a", "review", "Der Support antwortet nicht und alles läuft langsam.", "2026-03-26"),
            ("a", "review", "Horrible, useless and broken.", "2025-10-01"),  # outside 90 days
            ("a", "review", "Horrible, useless and broken.", "2026-04-02"),  # after the date
            ("b", "review", "Die Software läuft sehr langsam und kostet zu viel.", "2026-03-10"),
        ]
    )
    f = build_features({"accounts": _accounts(), "feedback": fb}, CFG, AS_OF).sort("account_id")
    read = texts_of({"feedback": fb}, CFG).filter(pl.col("sentiment").is_not_null())
    a_sent = read.filter(
        (pl.col("account_id") == "a")
        & pl.col("created_at").is_between(datetime(2026, 1, 1), datetime(2026, 4, 1), closed="left")
    )["sentiment"]
    assert a_sent.len() == 2  # the German text does not count
    expected = pl.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "sentiment_90d": [round(float(a_sent.mean()), 6), None, None],  # type: ignore[arg-type]
            "sentiment_n_90d": pl.Series([2, 0, 0], dtype=pl.UInt32),
            "negative_share_90d": [0.5, None, None],
            "complaints_90d": pl.Series([1, 0, 0], dtype=pl.UInt32),
            "complaints_per_seat_90d": [0.1, 0.0, 0.0],
        }
    )
    got = f.select(expected.columns).with_columns(pl.col("sentiment_90d").round(6))
    assert_frame_equal(got, expected)


def test_complaint_tickets_count_and_their_resolution_time() -> None:
    cfg = parse_config(
        {
            "sources": {"accounts": {"uri": "a.csv"}, "tickets": {"uri": "t.csv"}},
            "text": {"enabled": True, "complaint_values": {"category": ["billing dispute"]}},
        },
        Path(),
    )
    tickets = pl.DataFrame(
        {
            "ticket_id": ["t1", "t2", "t3"],
            "account_id": ["a", "a", "b"],
            "opened_at": [datetime(2026, 3, 1), datetime(2026, 3, 2), datetime(2026, 3, 3)],
            "resolved_at": [datetime(2026, 3, 2), datetime(2026, 3, 2, 6), None],
            "priority": ["high", "low", "low"],
            "category": ["billing dispute", "question", "billing dispute"],
        }
    )
    f = build_features({"accounts": _accounts(), "tickets": tickets}, cfg, AS_OF).sort("account_id")
    assert f["complaints_90d"].to_list() == [1, 1, 0]
    # a's complaint took 24 h; b's is still open; neither has text, so no sentiment
    assert f["complaint_resolution_hours"].to_list() == [24.0, None, None]
    assert f["sentiment_90d"].null_count() == 3


def test_truncate_marks_the_cut_on_a_word_boundary() -> None:
    assert truncate("short text") == "short text"
    cut = truncate("word " * 100, 30)
    assert cut.endswith("…")
    assert len(cut) <= 30
    assert not cut[:-1].endswith(" ")


def test_the_truncating_expression_cuts_as_truncate_does() -> None:
    texts = [
        "short text",
        "word " * 100,
        "  leading\tand\ninner   spaces  ",
        "a" * 300,
        "é " * 150,
        " word " * 36 + "longword",
        "ab " * 59 + "c" * 10,
        "x" * 179 + " y",
        "",
    ]
    for n in (30, 180):
        got = pl.DataFrame({"t": texts}).select(truncated(pl.col("t"), n))["t"].to_list()
        assert got == [truncate(t, n) for t in texts]


def test_voice_kpis_of_the_window() -> None:
    fb = _feedback(
        [
            ("a", "complaint", "Awful outage today, everything is broken.", "2026-03-25"),
            ("b", "review", "Excellent product, we love it.", "2026-03-20"),
            (
                "b",
                "complaint",
                "Awful outage today, everything is broken.",
                "2025-06-01",
            ),  # outside the window
        ]
    )
    k = voice_kpis(texts_of({"feedback": fb}, CFG), 4, AS_OF, 90)
    assert (k["complaints_n"], k["complaint_rate"], k["sentiment_n"]) == (1, 0.25, 2)


def test_no_text_source_imports_no_nlp_library() -> None:
    code = (
        "import sys, flows.steps, flows.weekly\n"
        "from pathlib import Path\n"
        "from tasks.config import parse_config\n"
        "from tasks.text.annotate import annotate\n"
        "cfg = parse_config({'sources': {'accounts': {'uri': 'a.csv'}}}, Path('.'))\n"
        "assert not cfg.text_stage and annotate(cfg, {}) == {}\n"
        "names = [m for m in sys.modules if m.split('.')[0] in "
        "('vaderSentiment', 'snownlp', 'py3langid', 'tasks')]\n"
        "assert not [m for m in names if not m.startswith('tasks')], names\n"
        "assert 'tasks.text.models' not in sys.modules\n"
    )
    _runs_clean(code)


@pytest.fixture
def evidence_html() -> str:
    ctx = {
        "voice": {
            "days": 90,
            "themes": [{"theme": "support", "n": 1, "negative": 1}],
            "languages": [{"language": "en", "n": 2, "scored": 1}],
            "shown": [
                {
                    "account_id": "a",
                    "name": "A",
                    "sentiment": "-0.70",
                    "texts_n": 1,
                    "measures": ["sentiment_90d (-9.0)"],
                    "actions": ["Respond to a surge of negative feedback"],
                    "evidence": [
                        {
                            "channel": "review",
                            "date": "2026-03-25",
                            "text": "<script>alert(1)</script> awful",
                            "sentiment": "-0.70",
                            "language": "en",
                            "themes": "support",
                            "label": "negative",
                        }
                    ],
                }
            ],
            "more": 0,
        }
    }
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )
    source = env.loader.get_source(env, "report.html.j2")[0]  # type: ignore[union-attr]
    block = source[source.index("{% if voice %}") : source.index('<section id="parents">')]
    block = block[: block.rindex("{% if parents %}")]
    env.filters["num"] = lambda v, d=0: f"{v:,.{d}f}"
    return env.from_string(block).render(ctx)


def test_the_report_block_escapes_the_texts(evidence_html: str) -> None:
    assert "<script>" not in evidence_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; awful" in evidence_html
    assert "review · 2026-03-25 · en · -0.70" in evidence_html
    assert "1 not scored: language_unsupported" in evidence_html


def test_evidence_lists_what_the_report_digests_and_pages_show() -> None:
    """The report's first top_n, each CSM's first 10 and the paged accounts; all are counted."""
    from tasks.mail.compose import own_voice
    from tasks.text.annotate import TEXT_SCHEMA
    from tasks.text.evidence import DIGEST_ROWS, account_evidence

    cfg = CFG.model_copy(update={"report": CFG.report.model_copy(update={"top_n": 3})})
    ids = [f"a{i:02d}" for i in range(40)]
    owners = ["ann@x.com"] * 30 + ["Bob@x.com"] * 5 + ["bob@x.com"] * 5  # one CSM, two spellings
    scores = pl.DataFrame(
        {
            "account_id": ids,
            "name": ids,
            "csm_email": owners,
            "lost_sentiment_90d": [float(40 - i) for i in range(40)],  # a00 lost most
        }
    )
    texts = pl.DataFrame(
        [
            {
                "account_id": a,
                "source": "feedback",
                "item_id": a,
                "channel": "review",
                "created_at": datetime(2026, 3, 30),
                "text": f"bad {a}",
                "sentiment": -0.5,
            }
            for a in ids
        ],
        schema=TEXT_SCHEMA,
    )
    actions = pl.DataFrame(schema={"account_id": pl.String, "action": pl.String})
    kept, total = account_evidence(texts, scores, actions, cfg, AS_OF, pages=["a25"])
    assert total == 40
    got = [a["account_id"] for a in kept]
    assert got == [*ids[:DIGEST_ROWS], "a25", *ids[30:40]]  # ann's first 10 hold the top 3
    assert all(a["evidence"][0]["text"] == f"bad {a['account_id']}" for a in kept)
    ctx: Any = {"voice": {"accounts": kept}}
    bob = scores.filter(pl.col("csm_email").str.to_lowercase() == "bob@x.com")
    assert [a["account_id"] for a in own_voice(ctx, bob)] == ids[30:40]


def test_the_text_models_load_in_the_background_only_with_a_text_stage() -> None:
    code = (
        "import sys, threading\n"
        "from pathlib import Path\n"
        "from tasks.config import parse_config\n"
        "from tasks.text.annotate import preload_text\n"
        "plain = parse_config({'sources': {'accounts': {'uri': 'a.csv'}}}, Path('.'))\n"
        "preload_text(plain)\n"
        "assert not [t for t in threading.enumerate() if t.name == 'preload-text']\n"
        "text = parse_config({'sources': {'accounts': {'uri': 'a.csv'}, "
        "'feedback': {'uri': 'f.csv'}}}, Path('.'))\n"
        "preload_text(text)\n"
        "[t] = [t for t in threading.enumerate() if t.name == 'preload-text']\n"
        "t.join()\n"
        "from tasks.text import models\n"
        "assert 'snownlp' in sys.modules\n"
        "assert models._chinese.cache_info().currsize == 1\n"
        "assert models._identifier.cache_info().currsize == 1\n"
    )
    _runs_clean(code)
