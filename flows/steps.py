"""The steps both flows share, as Prefect tasks, from extract to deliver.

In order: extract, validate, features, score, recommend, KPIs, write the files, render the
report, compose the e-mails, store, deliver.

Each task only does I/O, retries and logging around the plain functions of ``tasks/``; the
weekly and the backfill flow are short lists of these steps.

Over 400 lines on purpose: every @task both flows share stays in this one file, so each
name in Prefect's UI maps to one place (the backfill's own tasks are in ``flows/passes.py``).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from flows.pages import account_pages
from flows.params import RunOptions
from flows.step import step
from tasks.actions import recommend
from tasks.backfill import SpanWindow
from tasks.calibrate import ChurnForecast, Method, forecast_churn
from tasks.config import Config
from tasks.csvfile import write_csv
from tasks.currency import rate_table, to_home
from tasks.errors import is_transient
from tasks.faults import fault_point
from tasks.features.build import build_features_many
from tasks.forecast import renewal_forecast
from tasks.history.connect import open_history
from tasks.history.context import HistoryContext, history_context
from tasks.history.schema import HistoryStore, Snapshot, make_snapshot
from tasks.kpis import Kpis, compute_kpis
from tasks.loop import LoopRun, run_loop
from tasks.mail.compose import Drawn, build_emails, draw_digest_charts
from tasks.mail.outbox import write_outbox
from tasks.mail.smtp import SmtpSettings, send_outbox
from tasks.outputs import (
    listed_actions,
    publish,
    scores_table,
    stage_outputs,
    validation_json,
)
from tasks.overrides import apply_overrides, load_overrides
from tasks.report.accounts.pages import PageMode, PagePlan, links, page_accounts
from tasks.report.backtest_view import read_backtest
from tasks.report.charts import warm_up as warm_up_charts
from tasks.report.context import ReportContext, ReportInputs, build_context
from tasks.report.templates import render_report
from tasks.rollup import check_hierarchy, rollup_scores
from tasks.rules import rules_with_data
from tasks.schemas import DATASETS
from tasks.score import add_trends, score_accounts
from tasks.sources.cache import ExtractCache, extract_cached
from tasks.sources.plan import Window
from tasks.text.annotate import annotate, texts_of
from tasks.text.evidence import voice_kpis
from tasks.validate import ValidatedDataset, gate, validate_dataset
from tasks.xlsxfile import AT_RISK_FILE, write_at_risk


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
    # the lifecycle's counts: fired = new + carried + deferred + holdout (SPEC 10.1)
    loop: dict[str, int] = field(default_factory=dict)
    skipped_rules: dict[str, str] = field(default_factory=dict)  # action -> why it had no data


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


@step(
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
    fault_point("after-extract")  # test-only: CHS_FAULT_AT (tasks/faults.py)
    return data


@step(name="validate", cache_policy=NONE)
def validate(
    cfg: Config, raw: dict[str, pl.DataFrame], run_time: datetime, as_of: date | None = None
) -> dict[str, ValidatedDataset]:
    """Convert amounts to the home currency, validate every dataset with its suite; stop on a
    dataset-level failure.
    """
    log = get_run_logger()
    out: dict[str, ValidatedDataset] = {}
    if "fx_rates" in raw:  # first: the other datasets' amounts are converted with its rates
        out["fx_rates"] = validate_dataset(raw["fx_rates"], "fx_rates", cfg, run_time)
        gate(out["fx_rates"], cfg)
    rates = rate_table(out["fx_rates"].accepted if "fx_rates" in out else None)
    day = as_of or run_time.date()

    def home(name: str) -> pl.DataFrame:
        return to_home(raw[name], name, rates, cfg.currency.home, day)

    out["accounts"] = validate_dataset(home("accounts"), "accounts", cfg, run_time)
    gate(out["accounts"], cfg)
    fault_point("validate")
    check_hierarchy(out["accounts"].accepted)  # a cycle of parents stops the run (exit 2)
    ids = out["accounts"].accepted["account_id"].to_list()
    for name in raw:
        if name not in out:
            out[name] = validate_dataset(home(name), name, cfg, run_time, account_ids=ids)
            gate(out[name], cfg)
    out = annotate(cfg, out)  # sentiment, language and themes of every text ([text])
    for name, v in out.items():
        s = v.summary()
        log.info(
            "validated %s: %s accepted, %s quarantined",
            name,
            f"{s['rows_accepted']:,}",
            f"{s['rows_quarantined']:,}",
        )
    return out


@step(name="features", cache_policy=NONE)
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


@step(name="score", cache_policy=NONE)
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


@step(name="calibrate", cache_policy=NONE)
def calibrate_churn(
    scored: pl.DataFrame,
    validated: dict[str, ValidatedDataset],
    history: HistoryContext,
    as_of: date,
    method: Method = "platt",
) -> tuple[pl.DataFrame, ChurnForecast]:
    """Add ``p_churn_90d``: the score calibrated on earlier snapshots whose outcome is known."""
    accounts = validated["accounts"].accepted
    scored, churn = forecast_churn(scored, history.risk, accounts, as_of, method=method)
    note = churn.summary()["note"]
    if note:
        get_run_logger().warning("p_churn_90d is null: %s", note)
    return scored, churn


@step(
    name="history-read",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=_retry_transient,
    cache_policy=NONE,
)
def read_history(cfg: Config, as_of: date) -> HistoryContext:
    """Fetch last week's and 4 weeks' ago scores, recent KPIs, the trend and the ARR at the KPI window start."""
    store = open_history(cfg)
    try:
        return history_context(store, cfg, as_of)
    finally:
        store.close()


@step(name="recommend", cache_policy=NONE)
def recommend_actions(cfg: Config, scored: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Fire the playbook rules that have data; say which were skipped and why."""
    rules, skipped = rules_with_data(cfg.actions, scored)
    for action, why in skipped.items():
        get_run_logger().info("playbook %r skipped: %s", action, why)
    return recommend(scored, cfg.model_copy(update={"actions": rules}), as_of)


@step(name="lifecycle", cache_policy=NONE)
def lifecycle(
    cfg: Config,
    fired: pl.DataFrame,
    scored: pl.DataFrame,
    validated: dict[str, ValidatedDataset],
    history: HistoryContext,
    as_of: date,
) -> LoopRun:
    """Carry, open, defer, hold out and expire the actions; apply status updates; measure."""
    loop = run_loop(cfg, fired, scored, validated, history, as_of)
    c = loop.advanced.counts
    get_run_logger().info(
        "actions: %d fired = %d new + %d carried + %d deferred + %d held out "
        "(%d in cooldown, %d expired, %d status updates applied)",
        *(c[k] for k in ("fired", "new", "carried", "deferred", "holdout")),
        *(c[k] for k in ("cooling", "expired", "updated")),
    )
    return loop


@step(name="kpis", cache_policy=NONE)
def kpis(
    cfg: Config,
    validated: dict[str, ValidatedDataset],
    scored: pl.DataFrame,
    as_of: date,
    arr_start: pl.DataFrame | None,
    churn: ChurnForecast | None = None,
) -> Kpis:
    """Compute the portfolio KPIs and, with the churn calibration, the renewal forecast."""
    data = {k: v.accepted for k, v in validated.items()}
    out = compute_kpis(data, scored, cfg, as_of, arr_start)
    if cfg.text_stage:  # the portfolio's complaint rate and sentiment (tasks/text/)
        voice = voice_kpis(texts_of(data, cfg), scored.height, as_of, cfg.text.days)
        out.update(voice)  # type: ignore[typeddict-item]
    if churn is not None:
        out["renewal_forecast"] = renewal_forecast(scored, churn.probabilities, as_of)
        out["churn_calibration"] = churn.summary()
    return out


def mail_sender() -> str:
    """Return the From address; a bad SMTP or sender setting stops the run before any file."""
    smtp = SmtpSettings.from_env()
    return smtp.sender if smtp else SmtpSettings.sender_from_env()


@step(name="write-files", cache_policy=NONE)
def write_files(
    cfg: Config,
    as_of: date,
    scored: pl.DataFrame,
    actions: pl.DataFrame,
    kpi: Kpis,
    validated: dict[str, ValidatedDataset],
) -> Path:
    """Write the date's scores, actions, KPIs and validation files into a staging folder."""
    table = scores_table(scored, cfg)
    return stage_outputs(cfg.out_dir, as_of, table, actions, kpi, validated, cfg.output.csv_bom)


@step(name="write-xlsx", cache_policy=NONE)
def write_xlsx(cfg: Config, scored: pl.DataFrame, actions: pl.DataFrame, stage: Path) -> None:
    """Write ``at_risk.xlsx`` (the at-risk accounts and the actions) into the staging folder."""
    if cfg.output.xlsx_max_rows:
        table, listed = scores_table(scored, cfg), listed_actions(actions)
        write_at_risk(stage / AT_RISK_FILE, table, listed, cfg.output.xlsx_max_rows)


def write_loop_files(loop: LoopRun, stage: Path) -> None:
    """Write effectiveness.json into the staging folder."""
    (stage / "effectiveness.json").write_text(json.dumps(loop.effectiveness, indent=2))


@step(name="rollup", cache_policy=NONE)
def rollup(
    cfg: Config,
    as_of: date,
    scored: pl.DataFrame,
    validated: dict[str, ValidatedDataset],
    stage: Path,
) -> pl.DataFrame:
    """Roll the children's scores up to their parents; write scores_rollup.* to the stage."""
    out = rollup_scores(scored, validated["accounts"].accepted, cfg, as_of)
    out.write_parquet(stage / "scores_rollup.parquet")
    write_csv(out, stage / "scores_rollup.csv", cfg.output.csv_bom)
    return out


@step(name="render-report", cache_policy=NONE)
def render(
    cfg: Config,
    as_of: date,
    scored: pl.DataFrame,
    actions: pl.DataFrame,
    kpi: Kpis,
    validated: dict[str, ValidatedDataset],
    history: HistoryContext,
    stage: Path,
    parents: pl.DataFrame | None = None,
    pages: PagePlan | None = None,
    effect: dict[str, Any] | None = None,
) -> ReportContext:
    """Build the report's context and write ``report.html`` into the staging folder."""
    fault_point("render")
    surveys = validated.get("survey_responses")
    ctx = build_context(
        ReportInputs(
            cfg=cfg,
            as_of=as_of,
            scores=scored,
            actions=actions,
            kpis=kpi,
            validation=validation_json(validated),
            prev_kpis=history.kpis_before(as_of),
            prev_scores=history.prev_1w,
            history=history.kpis,
            surveys=surveys.accepted if surveys else None,
            backtest=read_backtest(cfg),
            rollup=parents,
            accounts=validated["accounts"].accepted,
            runs=history.runs,
            effectiveness=effect,
            texts=texts_of({k: v.accepted for k, v in validated.items()}, cfg)
            if cfg.text_stage
            else None,
        )
    )
    ctx["account_pages"] = links(pages or PagePlan())
    (stage / "report.html").write_text(render_report(ctx), encoding="utf-8")
    return ctx


@step(name="compose-emails", cache_policy=NONE)
def compose_emails(
    cfg: Config,
    scored: pl.DataFrame,
    actions: pl.DataFrame,
    ctx: ReportContext,
    sender: str,
    stage: Path,
    state: pl.DataFrame | None = None,
    drawn: Drawn | None = None,
) -> int:
    """Build the stakeholder e-mail and the CSM digests into the staging folder's outbox."""
    built = build_emails(scored, actions, ctx, cfg, sender, state, drawn)
    for address in built.skipped:
        get_run_logger().warning("no e-mail to %r: not a plain e-mail address", address)
    for name, data in built.files.items():  # the CSVs over [email] attach_max_bytes
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_bytes(data)
    return len(write_outbox(built.messages, stage / "outbox"))


@step(
    name="store",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=_retry_transient,
    cache_policy=NONE,
)
def store(
    cfg: Config, snapshot: Snapshot, stage: Path, history: HistoryStore | None = None
) -> Path:
    """Write the snapshot to history in one transaction, then publish the date's files.

    A failure keeps the staging folder for a retry; the run's lock removes it if the run fails.
    """
    target = history or open_history(cfg)
    try:
        target.write_snapshot(snapshot)
    finally:
        if history is None:
            target.close()
    fault_point("publish")
    return publish(stage, cfg.out_dir, snapshot.as_of)


@dataclass
class Published:
    """One scored as-of date: its results, its history snapshot and its folder of files.

    ``out`` is where the files are once stored; before that (``prepare_date``) it is the
    staging folder.
    """

    scored: pl.DataFrame
    actions: pl.DataFrame
    kpi: Kpis
    out: Path
    snapshot: Snapshot
    loop: dict[str, int] = field(default_factory=dict)
    skipped_rules: dict[str, str] = field(default_factory=dict)


def prepare_date(
    cfg: Config,
    day: date,
    features: pl.DataFrame,
    validated: dict[str, ValidatedDataset],
    history: HistoryContext,
    run_time: datetime,
    batch: str | None = None,
    emails: bool = True,
    pages: PageMode | None = None,
) -> Published:
    """Compute one date's outputs into a staging folder, without storing them yet.

    That is: score, recommend, compute KPIs, write the files, render the report and compose the
    e-mails, and with ``pages`` the account pages (SPEC 10.2).
    """
    sender = mail_sender()
    warm_up_charts()  # the chart engine starts in the background while the date is scored
    scored = score(cfg, features, day, history.prev_1w, history.prev_4w)
    scored, churn = calibrate_churn(scored, validated, history, day, cfg.calibration.method)
    drawn = draw_digest_charts(scored, cfg) if emails else {}  # drawn while the date goes on
    loop = lifecycle(cfg, recommend_actions(cfg, scored, day), scored, validated, history, day)
    validated = loop.validated  # refused status updates are quarantined
    actions = loop.advanced.work  # what the report and the e-mails list as this week's work
    kpi = kpis(cfg, validated, scored, day, history.arr_start, churn)
    stage = write_files(cfg, day, scored, loop.advanced.listed, kpi, validated)
    write_loop_files(loop, stage)
    parents = rollup(cfg, day, scored, validated, stage)
    state = loop.advanced.state
    plan = PagePlan.of(page_accounts(scored, state, parents, pages), cfg, day) if pages else None
    ctx = render(
        cfg, day, scored, actions, kpi, validated, history, stage, parents, plan, loop.effectiveness
    )
    if emails:  # a backfill's earlier dates: their outbox stays empty, and no workbook
        compose_emails(cfg, scored, actions, ctx, sender, stage, loop.advanced.state, drawn)
        write_xlsx(cfg, scored, loop.advanced.listed, stage)
    if plan is not None:
        frames = {"scored": scored, "actions": state, "rollup": parents}
        voice = (ctx.get("voice") or {}).get("accounts")
        account_pages(cfg, day, plan, frames, validated, history, stage, voice)
    run = {
        "run_at": run_time,
        "config_hash": cfg.fingerprint(),
        "code_version": code_version(),
        "accounts": scored.height,
        "batch": batch,
    }
    snapshot = make_snapshot(cfg, day, scored, loop.advanced.state, kpi, run)
    snapshot.action_events = loop.advanced.events
    skipped = rules_with_data(cfg.actions, scored)[1]
    return Published(scored, actions, kpi, stage, snapshot, loop.advanced.counts, skipped)


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
        loop=done.loop,
        skipped_rules=done.skipped_rules,
    )


@step(name="deliver", cache_policy=NONE)
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


def _calibration_line(kpi: Kpis) -> str:
    """Say in the run summary why ``p_churn_90d`` is null, when it is."""
    note = (kpi.get("churn_calibration") or {}).get("note")
    return f"p_churn_90d: {note}.\n\n" if note else ""


def publish_artifacts(result: RunResult, done: Published) -> None:
    """Publish the week at a glance to Prefect's UI: the summary and the at-risk accounts."""
    scored, actions, kpi = done.scored, done.actions, done.kpi
    seg = result.segments
    c = done.loop
    loop = (
        f"\n\nActions: {c.get('fired', 0)} fired = {c.get('new', 0)} new + "
        f"{c.get('carried', 0)} carried + {c.get('deferred', 0)} deferred + "
        f"{c.get('holdout', 0)} held out ({c.get('cooling', 0)} in cooldown)"
        if c
        else ""
    )
    create_markdown_artifact(
        key="weekly-summary",
        markdown=(
            f"# Customer health {result.as_of}\n\n"
            f"| accounts | healthy | neutral | at risk | insufficient data | NPS | actions |\n|---|---|---|---|---|---|---|\n"
            f"| {result.accounts} | {seg.get('healthy', 0)} | {seg.get('neutral', 0)} | {seg.get('at_risk', 0)} | "
            f"{seg.get('insufficient_data', 0)} | {kpi.get('nps')} (n={kpi.get('nps_n')}) | {result.actions} |\n\n"
            f"{_calibration_line(kpi)}Report: `{result.out / 'report.html'}`{loop}"
            + "".join(
                f"\n\nSkipped playbook *{a}*: {why}" for a, why in result.skipped_rules.items()
            )
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
