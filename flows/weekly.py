"""The weekly flow: extract, validate, score, recommend, store, render, deliver."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from flows.alerts import alert_on_failure
from flows.params import RunOptions, WeeklyParams
from tasks.actions import recommend
from tasks.backfill import SpanWindow
from tasks.config import Config, load_config
from tasks.errors import is_transient
from tasks.features.build import build_features_many
from tasks.history.connect import open_history
from tasks.history.context import history_context
from tasks.history.schema import HistoryStore, Snapshot, make_snapshot
from tasks.kpis import compute_kpis
from tasks.mail.compose import build_emails
from tasks.mail.outbox import write_outbox
from tasks.mail.smtp import SmtpSettings, send_outbox
from tasks.outputs import discard, publish, scores_table, stage_outputs, validation_json
from tasks.overrides import apply_overrides, load_overrides
from tasks.report.backtest_view import read_backtest
from tasks.report.context import build_context
from tasks.report.templates import render_report
from tasks.schemas import DATASETS
from tasks.score import add_trends, score_accounts
from tasks.sources.cache import ExtractCache, extract_cached
from tasks.sources.plan import Window
from tasks.validate import ValidatedDataset, gate, preload, validate_dataset


@dataclass
class RunResult:
    """What a run produced, for the command line and the tests."""

    as_of: date
    out: Path
    accounts: int
    segments: dict[str, int]
    actions: int
    emails: int
    sent: int = 0
    pending: int = 0
    smtp: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@cache
def code_version() -> str:
    """Return the git commit of the code, or the package version outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
            check=False,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    except OSError:
        pass
    return "0.1.0"


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures a retry can cure; a missing file or column fails at once."""
    try:
        state.result()
    except Exception as exc:  # the state re-raises the task's exception; classify it
        return is_transient(exc)
    return False


@task(
    name="extract",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_retry_transient,
    cache_policy=NONE,
)
def extract(
    cfg: Config, as_of: date, run_time: datetime, first: date | None = None
) -> dict[str, pl.DataFrame]:
    """Read every configured source as of the date (from ``first``'s look-back for a backfill)."""
    log = get_run_logger()
    window = Window(as_of, run_time) if first is None else SpanWindow(as_of, run_time, first)
    store = ExtractCache.of(cfg)
    data = {}
    for name in DATASETS:
        if name in cfg.sources:
            t = time.perf_counter()
            data[name], hit = extract_cached(name, cfg, window, store)
            log.info(
                "read %s%s: %s rows (%.1f s)",
                name,
                " from the cache (source unchanged)" if hit else "",
                f"{data[name].height:,}",
                time.perf_counter() - t,
            )
    return data


@task(name="validate", cache_policy=NONE)
def validate(
    cfg: Config, raw: dict[str, pl.DataFrame], run_time: datetime
) -> dict[str, ValidatedDataset]:
    """Validate every dataset with its suite; stop on a dataset-level failure."""
    log = get_run_logger()
    out = {"accounts": validate_dataset(raw["accounts"], "accounts", cfg, run_time)}
    gate(out["accounts"], cfg)
    ids = out["accounts"].accepted["account_id"].to_list()
    for name, df in raw.items():
        if name != "accounts":
            out[name] = validate_dataset(df, name, cfg, run_time, account_ids=ids)
            gate(out[name], cfg)
    for name, v in out.items():
        s = v.summary()
        log.info(
            "validated %s: %s accepted, %s quarantined",
            name,
            f"{s['rows_accepted']:,}",
            f"{s['rows_quarantined']:,}",
        )
    return out


@task(name="features", cache_policy=NONE)
def features(
    cfg: Config, validated: dict[str, ValidatedDataset], dates: list[date]
) -> pl.DataFrame:
    """Compute every account's features for each as-of date in one pass over the data."""
    return build_features_many({k: v.accepted for k, v in validated.items()}, cfg, dates)


def compute_features(
    cfg: Config, validated: dict[str, ValidatedDataset], dates: list[date], opts: RunOptions
) -> pl.DataFrame:
    """Compute the features in one task, or in ``opts.partitions`` tasks on Dask."""
    if opts.partitions == 1:
        return features(cfg, validated, dates)
    from flows.scale import partitioned_features  # imports Dask only when it is used

    return partitioned_features(cfg, {k: v.accepted for k, v in validated.items()}, dates, opts)


@task(name="score", cache_policy=NONE)
def score(
    cfg: Config,
    features: pl.DataFrame,
    as_of: date,
    prev_1w: pl.DataFrame | None,
    prev_4w: pl.DataFrame | None,
) -> pl.DataFrame:
    """Compute measure points, dimensions, score, segment, drivers and trends of one date."""
    scored = score_accounts(features, cfg)
    return apply_overrides(
        add_trends(scored, prev_1w, prev_4w, cfg), load_overrides(cfg, as_of), cfg
    )


@task(name="history-read", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def read_history(cfg: Config, as_of: date) -> dict[str, Any]:
    """Fetch last week's and 4 weeks' ago scores, recent KPIs, the trend and the ARR at the KPI window start."""
    store = open_history(cfg)
    try:
        return history_context(store, cfg, as_of)
    finally:
        store.close()


@task(name="recommend", cache_policy=NONE)
def recommend_actions(cfg: Config, scored: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Fire the playbook rules."""
    return recommend(scored, cfg, as_of)


@task(name="kpis", cache_policy=NONE)
def kpis(
    cfg: Config,
    validated: dict[str, ValidatedDataset],
    scored: pl.DataFrame,
    as_of: date,
    arr_start: pl.DataFrame | None,
) -> dict[str, Any]:
    """Compute the portfolio KPIs."""
    return compute_kpis(
        {k: v.accepted for k, v in validated.items()}, scored, cfg, as_of, arr_start
    )


@task(name="render", cache_policy=NONE)
def render(
    cfg: Config,
    as_of: date,
    scored: pl.DataFrame,
    actions: pl.DataFrame,
    kpi: dict[str, Any],
    validated: dict[str, ValidatedDataset],
    history: dict[str, Any],
    emails: bool = True,
) -> Path:
    """Write the date's files and report into a staging folder, and its e-mails if asked."""
    log = get_run_logger()
    past = history["kpis"]
    prev_kpis = next(
        (k for k in reversed(past) if k["as_of"] <= (as_of - timedelta(days=4)).isoformat()), None
    )
    surveys = validated.get("survey_responses")
    ctx = build_context(
        scored,
        actions,
        kpi,
        validation_json(validated),
        cfg,
        as_of,
        prev_kpis,
        history["prev_1w"],
        past,
        surveys.accepted if surveys else None,
        read_backtest(cfg),
    )
    # Checked before anything is written: a bad SMTP or sender setting stops the run here.
    smtp = SmtpSettings.from_env()
    sender = smtp.sender if smtp else SmtpSettings.sender_from_env()
    stage = stage_outputs(
        cfg.out_dir, as_of, scores_table(scored, cfg), actions, kpi, validated, render_report(ctx)
    )
    if not emails:  # a backfill's earlier dates: their outbox stays empty
        return stage
    built = build_emails(scored, actions, ctx, cfg, sender)
    for address in built.skipped:
        log.warning("no e-mail to %r: not a plain e-mail address", address)
    write_outbox(built.messages, stage / "outbox")
    return stage


@task(name="store", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def store(
    cfg: Config, snapshot: Snapshot, stage: Path, history: HistoryStore | None = None
) -> Path:
    """Write the snapshot to history in one transaction, then publish the date's files."""
    target = history or open_history(cfg)
    try:
        target.write_snapshot(snapshot)
    except BaseException:
        discard(stage)
        raise
    finally:
        if history is None:
            target.close()
    return publish(stage, cfg.out_dir, snapshot.as_of)


@dataclass
class Published:
    """One scored as-of date: its results, its history snapshot and its folder of files.

    ``out`` is where the files are once stored; before that (``prepare_date``) it is the
    staging folder.
    """

    scored: pl.DataFrame
    actions: pl.DataFrame
    kpi: dict[str, Any]
    out: Path
    snapshot: Snapshot


def prepare_date(
    cfg: Config,
    day: date,
    features: pl.DataFrame,
    validated: dict[str, ValidatedDataset],
    history: dict[str, Any],
    batch: str | None = None,
    emails: bool = True,
) -> Published:
    """Score, recommend, compute KPIs and render one date into a staging folder (not stored)."""
    scored = score(cfg, features, day, history["prev_1w"], history["prev_4w"])
    actions = recommend_actions(cfg, scored, day)
    kpi = kpis(cfg, validated, scored, day, history["arr_start"])
    stage = render(cfg, day, scored, actions, kpi, validated, history, emails)
    run = {
        "run_at": datetime.now(UTC).replace(tzinfo=None),
        "config_hash": cfg.fingerprint(),
        "code_version": code_version(),
        "accounts": scored.height,
        "batch": batch,
    }
    snapshot = make_snapshot(cfg, day, scored, actions, kpi, run)
    return Published(scored, actions, kpi, stage, snapshot)


def result_of(done: Published, delivered: tuple[int, int, bool]) -> RunResult:
    """Summarise a published date for the command line."""
    sent, pending, smtp = delivered
    return RunResult(
        done.snapshot.as_of,
        done.out,
        done.scored.height,
        done.kpi["accounts_by_segment"],
        done.actions.height,
        len(list((done.out / "outbox").glob("*.eml"))),
        sent,
        pending,
        smtp,
    )


@task(name="deliver", cache_policy=NONE)
def deliver(out: Path, send: bool) -> tuple[int, int, bool]:
    """Send the outbox over SMTP when asked and configured; otherwise leave it in the outbox."""
    log = get_run_logger()
    outbox = out / "outbox"
    smtp = SmtpSettings.from_env()
    n = len(list(outbox.glob("*.eml")))
    if not send or smtp is None:
        why = "--no-send" if not send else "CHS_SMTP_HOST is not set"
        note = f"{n} e-mails are only in the outbox {outbox} ({why}); `chs send` delivers them."
        if send:
            log.warning(note)
        else:
            log.info(note)
        return 0, n, smtp is not None
    report = send_outbox(outbox, smtp)
    for error in report.errors:
        log.warning("e-mail %s", error)
    note = f"{report.sent} e-mails sent via {smtp.host}:{smtp.port}."
    if report.pending:
        log.warning(
            f"{note} {report.pending} could not be delivered and are only in the outbox "
            f"{outbox}; `chs send --as-of {out.name}` retries them."
        )
    else:
        log.info(note)
    return report.sent, report.pending, True


def _artifacts(
    result: RunResult, scored: pl.DataFrame, actions: pl.DataFrame, kpi: dict[str, Any]
) -> None:
    seg = result.segments
    create_markdown_artifact(
        key="weekly-summary",
        markdown=(
            f"# Customer health {result.as_of}\n\n"
            f"| accounts | healthy | neutral | at risk | insufficient data | NPS | actions |\n|---|---|---|---|---|---|---|\n"
            f"| {result.accounts} | {seg.get('healthy', 0)} | {seg.get('neutral', 0)} | {seg.get('at_risk', 0)} | "
            f"{seg.get('insufficient_data', 0)} | {kpi.get('nps')} (n={kpi.get('nps_n')}) | {result.actions} |\n\n"
            f"Report: `{result.out / 'report.html'}`"
        ),
        description="Headline KPIs and segments of the weekly run",
    )
    top = (
        scored.filter(pl.col("segment") == "at_risk")
        .sort("arr", descending=True, nulls_last=True)
        .head(50)
    )
    acts = actions.group_by("account_id").agg(pl.col("action").str.join("; ").alias("actions"))
    rows = top.select("account_id", "name", "arr", "score", "top_drivers").join(
        acts, on="account_id", how="left"
    )
    create_table_artifact(
        key="at-risk-accounts", table=rows.to_dicts(), description="At-risk accounts by ARR"
    )


@flow(name="customer-health-weekly", log_prints=False, on_failure=[alert_on_failure])
def weekly_flow(params: WeeklyParams) -> RunResult:
    """Score every account for one as-of date and build the report and e-mails."""
    preload()  # Great Expectations loads while history and sources are read
    cfg = load_config(Path(params.config_path))
    day = params.as_of or date.today()
    run_time = datetime.now()
    history = read_history(cfg, day)
    raw = extract(cfg, day, run_time)
    validated = validate(cfg, raw, run_time)
    feats = compute_features(cfg, validated, [day], params)
    prepared = prepare_date(cfg, day, feats, validated, history)
    done = replace(prepared, out=store(cfg, prepared.snapshot, prepared.out))
    result = result_of(done, deliver(done.out, params.send))
    _artifacts(result, done.scored, done.actions, done.kpi)
    return result
