"""The weekly flow: extract, validate, score, recommend, store, render, deliver."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import flow

from flows.alerts import report_failure
from flows.chat import compose_chat, deliver_chat
from flows.params import WeeklyParams
from flows.steps import (
    RunResult,
    compute_features,
    deliver,
    extract,
    prepare_date,
    publish_artifacts,
    read_history,
    result_of,
    store,
    validate,
)
from flows.writeback import write_back
from tasks.backfill import counted_only
from tasks.clock import utc_now
from tasks.config import load_config
from tasks.report.charts import warm_up as warm_up_charts
from tasks.report.templates import preload as preload_templates
from tasks.runlock import run_lock
from tasks.text.annotate import preload_text
from tasks.validate import preload


@flow(
    name="customer-health-weekly",
    log_prints=False,
    on_failure=[report_failure],
    on_crashed=[report_failure],
)
def weekly_flow(params: WeeklyParams) -> RunResult:
    """Score every account for one as-of date and build the report and e-mails."""
    preload()  # Great Expectations loads while history and sources are read
    warm_up_charts()  # the chart engine starts too (~1 s, off the GIL), long before a chart
    preload_templates()  # and the report's and e-mails' templates are compiled
    cfg = load_config(Path(params.config_path))
    preload_text(cfg)  # and the text models, with a text source
    run_time = params.run_time or utc_now()  # one clock, in UTC like every timestamp read
    with run_lock(cfg.out_dir):  # one writer per output folder
        day = params.as_of or run_time.date()
        history = read_history(cfg, day)
        raw = extract(cfg, day, run_time)
        validated = validate(cfg, raw, run_time, day)
        del raw  # the validated frames are all the rest reads
        feats = compute_features(cfg, validated, [day], params)
        validated = counted_only(validated)  # the events are only counted from here on
        prepared = prepare_date(cfg, day, feats, validated, history, run_time, pages=params.pages)
        compose_chat(cfg, prepared.scored, prepared.actions, day, prepared.out)
        done = replace(prepared, out=store(cfg, prepared.snapshot, prepared.out))
        result = result_of(done, deliver(done.out, params.send))
        deliver_chat(cfg, done.out, params.send)
        write_back(cfg, day)
        publish_artifacts(result, done)
        return result
