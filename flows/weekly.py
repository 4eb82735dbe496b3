"""The weekly flow: extract, validate, score, recommend, store, render, deliver."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from flows.alerts import alert_on_failure
from tasks.actions import recommend
from tasks.config import Config, load_config
from tasks.deliver import SmtpSettings, build_emails, send_outbox, write_outbox
from tasks.extract import Window, extract_dataset
from tasks.features import build_features
from tasks.kpis import compute_kpis
from tasks.outputs import discard, publish, scores_table, stage_outputs, validation_json
from tasks.overrides import apply_overrides, load_overrides
from tasks.render import build_context, render_report
from tasks.schemas import DATASETS
from tasks.score import add_trends, score_accounts
from tasks.store import Snapshot, measures_long, open_history
from tasks.validate import ValidatedDataset, gate, validate_dataset


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


@task(name="extract", retries=2, retry_delay_seconds=[2, 10], cache_policy=NONE)
def extract(cfg: Config, as_of: date, run_time: datetime) -> dict[str, pl.DataFrame]:
    """Read every configured source as of the date."""
    log = get_run_logger()
    window = Window(as_of, run_time)
    data = {}
    for name in DATASETS:
        if name in cfg.sources:
            t = time.perf_counter()
            data[name] = extract_dataset(name, cfg, window)
            log.info(
                "read %s: %s rows (%.1f s)", name, f"{data[name].height:,}", time.perf_counter() - t
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


@task(name="score", cache_policy=NONE)
def score(
    cfg: Config,
    validated: dict[str, ValidatedDataset],
    as_of: date,
    prev_1w: pl.DataFrame | None,
    prev_4w: pl.DataFrame | None,
) -> pl.DataFrame:
    """Compute features, measure points, dimensions, score, segment, drivers and trends."""
    data = {k: v.accepted for k, v in validated.items()}
    scored = score_accounts(build_features(data, cfg, as_of), cfg)
    return apply_overrides(add_trends(scored, prev_1w, prev_4w, cfg), load_overrides(cfg, as_of), cfg)


@task(name="history-read", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def read_history(cfg: Config, as_of: date) -> dict[str, Any]:
    """Fetch last week's and 4 weeks' ago scores, recent KPIs and the ARR at the KPI window start."""
    store = open_history(cfg)
    try:
        return {
            "prev_1w": store.scores_near(as_of - timedelta(days=7), 3),
            "prev_4w": store.scores_near(as_of - timedelta(days=28), 3),
            "arr_start": store.scores_near(as_of - timedelta(days=cfg.windows.kpi_days), 7),
            "kpis": store.kpis_between(as_of - timedelta(days=7 * 13), as_of - timedelta(days=1)),
        }
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
) -> Path:
    """Render the report and e-mails into a staging folder."""
    past = history["kpis"]
    prev_kpis = next(
        (k for k in reversed(past) if k["as_of"] <= (as_of - timedelta(days=4)).isoformat()), None
    )
    trend = [(k["as_of"], k.get("mean_score")) for k in past] + [
        (as_of.isoformat(), kpi.get("mean_score"))
    ]
    ctx = build_context(
        scored,
        actions,
        kpi,
        validation_json(validated),
        cfg,
        as_of,
        prev_kpis,
        history["prev_1w"],
        trend,
    )
    stage = stage_outputs(
        cfg.out_dir, as_of, scores_table(scored, cfg), actions, kpi, validated, render_report(ctx)
    )
    smtp = SmtpSettings.from_env()
    sender = smtp.sender if smtp else "customer-health@localhost"
    emails = build_emails(
        scored,
        actions,
        {**ctx, "top_n": cfg.report.top_n},
        cfg.report.recipients,
        cfg.report.csm_digests,
        sender,
    )
    write_outbox(emails, stage / "outbox")
    return stage


@task(name="store", retries=2, retry_delay_seconds=[1, 5], cache_policy=NONE)
def store(
    cfg: Config,
    as_of: date,
    scored: pl.DataFrame,
    actions: pl.DataFrame,
    kpi: dict[str, Any],
    stage: Path,
) -> Path:
    """Write the snapshot to history in one transaction, then publish the date's files."""
    snap = Snapshot(
        as_of,
        scored.with_columns(pl.lit(as_of).alias("as_of")),
        measures_long(scored, cfg),
        actions,
        kpi,
        {
            "run_at": datetime.now(UTC).replace(tzinfo=None),
            "config_hash": cfg.fingerprint(),
            "code_version": code_version(),
            "accounts": scored.height,
        },
    )
    history = open_history(cfg)
    try:
        history.write_snapshot(snap)
    except BaseException:
        discard(stage)
        raise
    finally:
        history.close()
    return publish(stage, cfg.out_dir, as_of)


@task(name="deliver", cache_policy=NONE)
def deliver(out: Path, send: bool) -> tuple[int, int, bool]:
    """Send the outbox over SMTP when asked and configured; otherwise leave it in the outbox."""
    log = get_run_logger()
    outbox = out / "outbox"
    smtp = SmtpSettings.from_env()
    n = len(list(outbox.glob("*.eml")))
    if not send:
        log.info("%d e-mails written to %s (not sent: --no-send)", n, outbox)
        return 0, n, smtp is not None
    if smtp is None:
        log.warning(
            "CHS_SMTP_HOST is not set: %d e-mails are in %s; run `chs send` once SMTP is configured",
            n,
            outbox,
        )
        return 0, n, False
    sent, left = send_outbox(outbox, smtp)
    log.info("sent %d e-mails via %s; %d still in the outbox", sent, smtp.host, left)
    return sent, left, True


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
def weekly_flow(config_path: str, as_of: date | None = None, send: bool = False) -> RunResult:
    """Score every account for one as-of date and build the report and e-mails."""
    cfg = load_config(Path(config_path))
    day = as_of or date.today()
    run_time = datetime.now()
    history = read_history(cfg, day)
    raw = extract(cfg, day, run_time)
    validated = validate(cfg, raw, run_time)
    scored = score(cfg, validated, day, history["prev_1w"], history["prev_4w"])
    actions = recommend_actions(cfg, scored, day)
    kpi = kpis(cfg, validated, scored, day, history["arr_start"])
    stage = render(cfg, day, scored, actions, kpi, validated, history)
    out = store(cfg, day, scored, actions, kpi, stage)
    sent, pending, smtp = deliver(out, send)
    result = RunResult(
        day,
        out,
        scored.height,
        kpi["accounts_by_segment"],
        actions.height,
        len(list((out / "outbox").glob("*.eml"))),
        sent,
        pending,
        smtp,
    )
    _artifacts(result, scored, actions, kpi)
    return result
