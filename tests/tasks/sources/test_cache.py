"""The extraction cache: reused while a source is unchanged, read again as soon as it changes."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest
from polars.testing import assert_frame_equal

from flows.params import WeeklyParams
from flows.weekly import weekly_flow
from tasks.config import load_config, parse_config
from tasks.schemas import DATASETS
from tasks.sources.cache import KEEP, ExtractCache, extract_cached, source_fingerprint
from tasks.sources.plan import Window, plan_read
from tasks.sources.read import extract_dataset
from tests.conftest import DEMO_END

RUN = datetime.combine(DEMO_END, datetime.min.time()).replace(hour=23)


def _sources(demo: Path) -> list[Path]:
    return sorted(p for p in demo.rglob("*") if p.is_file() and p.suffix != ".toml")


def test_a_second_read_comes_from_the_cache_and_equals_the_source(demo: Path) -> None:
    cfg = load_config(demo / "chs.toml")
    store = ExtractCache.of(cfg)
    assert store is not None
    window = Window(DEMO_END, RUN)
    for name in (n for n in DATASETS if n in cfg.sources):
        first, hit = extract_cached(name, cfg, window, store)
        assert not hit
        again, hit = extract_cached(name, cfg, window, store)
        assert hit, name
        assert_frame_equal(again, first)
        assert_frame_equal(again, extract_dataset(name, cfg, window))
    # a later run time the same day asks the source for the same rows: still cached
    later = Window(DEMO_END, RUN.replace(hour=23, minute=59))
    assert extract_cached("usage_events", cfg, later, store)[1]


def test_a_changed_source_is_read_again(demo: Path) -> None:
    cfg = load_config(demo / "chs.toml")
    store = ExtractCache.of(cfg)
    window = Window(DEMO_END, RUN)
    extract_cached("survey_responses", cfg, window, store)
    csv = next(demo.glob("surveys/*.csv"))
    csv.write_text(csv.read_text() + "\n")  # same rows, but a new size and mtime
    assert not extract_cached("survey_responses", cfg, window, store)[1]
    # so is one whose config changed, or a different as-of date
    assert not extract_cached("survey_responses", cfg, Window(date(2026, 10, 5), RUN), store)[1]
    src = cfg.sources["survey_responses"]
    other = "latin-1" if src.encoding != "latin-1" else "utf-8"
    changed = cfg.model_copy(
        update={
            "sources": {
                **cfg.sources,
                "survey_responses": src.model_copy(update={"encoding": other}),
            }
        }
    )
    assert not extract_cached("survey_responses", changed, window, store)[1]


def test_the_cache_keeps_a_few_entries_and_survives_damage(demo: Path) -> None:
    cfg = load_config(demo / "chs.toml")
    store = ExtractCache.of(cfg)
    assert store is not None
    for day in range(1, KEEP + 3):  # each as-of date asks for another window of events
        extract_cached("usage_events", cfg, Window(date(2026, 10, day), RUN), store)
    files = list((store.folder / "usage_events").glob("*.arrow"))
    assert len(files) == KEEP
    for f in files:
        f.write_bytes(b"not arrow")
    window = Window(date(2026, 10, KEEP + 2), RUN)
    df, hit = extract_cached("usage_events", cfg, window, store)
    assert not hit  # a damaged entry is dropped and the source read again
    assert_frame_equal(df, extract_dataset("usage_events", cfg, window))
    # accounts have no time column: every as-of date shares one read
    extract_cached("accounts", cfg, Window(date(2026, 10, 1), RUN), store)
    assert extract_cached("accounts", cfg, Window(date(2026, 11, 1), RUN), store)[1]


def test_the_cache_can_be_turned_off(tmp_path: Path) -> None:
    cfg = parse_config(
        {"sources": {"accounts": {"uri": "a.csv"}}, "output": {"cache": False}}, tmp_path
    )
    assert ExtractCache.of(cfg) is None


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_rerun_after_a_failed_render_does_not_read_the_sources(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = WeeklyParams(config_path=str(demo / "chs.toml"), as_of=DEMO_END)
    monkeypatch.setenv("CHS_MAIL_FROM", "not an address")  # render checks the sender: fails
    with pytest.raises(Exception, match="CHS_MAIL_FROM"):
        weekly_flow(params)
    # damage every source but keep its size and mtime: only the cache can give the data now
    for path in _sources(demo):
        if ".cache" in path.parts or "out" in path.relative_to(demo).parts:
            continue
        st = path.stat()
        path.write_bytes(b"\0" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.delenv("CHS_MAIL_FROM")
    r = weekly_flow(params)
    assert r.accounts > 0
    assert (r.out / "report.html").exists()


@pytest.mark.postgres
def test_postgres_fingerprint_follows_new_rows(pg_database: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_database, autocommit=True) as con:
        con.execute(
            "drop table if exists fp_orders; create table fp_orders "
            "(account_id text, ordered_at timestamp, amount double precision)"
        )
        con.execute(
            "drop table if exists fp_accounts; create table fp_accounts (account_id text, name text)"
        )
        con.execute("insert into fp_orders values ('a', '2026-01-01', 10)")
        con.execute("insert into fp_accounts values ('a', 'Acme')")
    cfg = parse_config(
        {
            "sources": {
                "accounts": {"uri": pg_database, "table": "fp_accounts"},
                "orders": {"uri": pg_database, "table": "fp_orders"},
            }
        },
        tmp_path,
    )
    window = Window(DEMO_END, RUN)

    def prints() -> tuple[object, object]:
        return tuple(  # type: ignore[return-value]
            source_fingerprint(n, cfg.sources[n], cfg, plan_read(n, cfg, window))
            for n in ("orders", "accounts")
        )

    before = prints()
    assert before == prints()  # stable while nothing changes
    with psycopg.connect(pg_database, autocommit=True) as con:
        con.execute("insert into fp_orders values ('a', '2026-02-01', 5)")
        con.execute("update fp_accounts set name = 'Acme Ltd'")  # same count, new content
    after = prints()
    assert after[0] != before[0]
    assert after[1] != before[1]
