"""The config model: one pydantic model loaded from the TOML file at the edge.

Relative paths are relative to the config file; in URLs SQLAlchemy style applies
(``duckdb:///rel/path`` is relative, ``duckdb:////abs/path`` absolute).

Over 400 lines on purpose: the config is one pydantic model (house style), each section a
small class beside the others, so one file shows every key and its check.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.defaults import default_actions, default_measures
from tasks.errors import ConfigError
from tasks.notify.settings import NotifyConfig
from tasks.schemas import DATASETS, DIMENSIONS
from tasks.sources.presets import PRESETS, apply_preset
from tasks.writeback.settings import WritebackConfig

Direction = Literal["higher", "lower"]
Method = Literal["bands", "minmax", "percentile", "target"]


# a password written into a database URL (user:secret@ or ?password=), once ${ENV} are removed
_PASSWORD_IN_URI = re.compile(r"^[a-z]+://[^/@]*:[^@/]+@|[?&]password=[^&]")
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    """Where one canonical dataset comes from and how its columns map onto the canonical ones."""

    uri: str
    table: str | None = None
    query: str | None = None
    encoding: str = "utf-8"
    separator: str = ","
    columns: dict[str, str] = Field(default_factory=dict)  # canonical name = source column
    # strftime pattern(s) for text timestamps, tried in order ("%s": Unix seconds)
    datetime_format: str | list[str] | None = None
    date_format: str | list[str] | None = None
    timezone: str | None = None  # time zone of naive timestamps; results are UTC
    values: dict[str, dict[str, str]] = Field(default_factory=dict)  # column -> {raw: canonical}
    password_env: str | None = None  # environment variable that holds the database password
    password_secret: str | None = None  # Prefect Secret block that holds the database password
    null_values: list[str] = Field(default_factory=list)  # text that means "missing", e.g. "?"
    # a change log or snapshots: per key, the row with the latest value of this column not
    # after the as-of date is the record (a source column, or a canonical one it maps to)
    latest_by: str | None = None
    sheet: str | None = None  # the sheet of an .xlsx file (default: the first)
    preset: str | None = None  # ready column and value maps for a tool's export (presets.py)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str | None) -> str | None:
        try:
            if v is not None:
                ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r}; use an IANA name like Europe/Berlin"
            ) from None
        return v

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str | None) -> str | None:
        if v is not None and v not in PRESETS:
            raise ValueError(f"unknown preset {v!r}; expected one of {', '.join(PRESETS)}")
        return v

    @model_validator(mode="after")
    def _with_preset(self) -> SourceConfig:
        return apply_preset(self) if self.preset else self

    @model_validator(mode="after")
    def _table_or_query(self) -> SourceConfig:
        if self.table and self.query:
            raise ValueError("give either table or query, not both")
        postgres = self.uri.startswith(("postgresql://", "postgres://"))
        if (self.password_env or self.password_secret) and not postgres:
            raise ValueError("password_env and password_secret apply to postgresql:// sources")
        if self.password_env and self.password_secret:
            raise ValueError("give either password_env or password_secret, not both")
        if postgres and _PASSWORD_IN_URI.search(_ENV_REF.sub("", self.uri)):
            raise ValueError(
                "uri contains a password; credentials never live in the config file: "
                "use ${ENV} in the uri, password_env or password_secret"
            )
        return self


class OutputConfig(_Strict):
    """The ``[output]`` table: where files and history go, and the extraction cache."""

    dir: str = "out"
    history: str = "duckdb:///out/history.duckdb"
    cache: bool = True  # keep each extraction in <dir>/.cache while its source is unchanged
    csv_bom: bool = True  # CSVs start with a UTF-8 byte-order mark, so Excel reads them as UTF-8
    xlsx_max_rows: int = Field(10_000, ge=0)  # rows per sheet of at_risk.xlsx; 0: no workbook


class ReportConfig(_Strict):
    """The ``[report]`` table: who receives the report and how it is titled."""

    recipients: list[str] = Field(default_factory=list)
    csm_digests: bool = True
    title: str = "Customer health"
    company: str = ""
    top_n: int = 25  # rows in each list of the report
    # where <output dir> is served (e.g. https://intranet/chs): e-mails link the account pages
    # there; without it they link the published files (file://)
    base_url: str = ""


class EmailConfig(_Strict):
    """The ``[email]`` table: how large the e-mails may grow."""

    # CSVs are attached while their total stays within this many bytes; the rest are written
    # to <output dir>/<date>/attachments/ and the e-mail says where
    attach_max_bytes: int = Field(5_000_000, ge=0)


class ValidationConfig(_Strict):
    """The ``[validation]`` table: when bad rows stop a run, and which engine checks."""

    max_invalid_share: float = Field(0.2, ge=0, le=1)  # above this share a dataset stops the run
    # Datasets larger than this run their suite as Polars checks: GX costs ~2 s per million rows
    # here, its Polars translation 0.24 s, and a test keeps the two in agreement.
    gx_max_rows: int = 500_000


class WindowsConfig(_Strict):
    """The ``[windows]`` table: the look-back of each family of features, in days."""

    usage_days: int = Field(30, gt=0)
    support_days: int = Field(90, gt=0)
    survey_days: int = Field(180, gt=0)
    orders_days: int = Field(365, gt=0)
    outcomes_days: int = Field(365, gt=0)
    kpi_days: int = Field(90, gt=0)


class SurveyScale(_Strict):
    """The answer scale of one survey type and which end of it is good."""

    min: float
    max: float
    higher_is_better: bool = True


class MeasureConfig(_Strict):
    """One measure: which feature it reads, which dimension it feeds and how it is normalised."""

    name: str
    dimension: str
    feature: str | None = None  # defaults to the measure name
    weight: float = Field(1.0, gt=0)
    method: Method = "bands"
    direction: Direction = "higher"
    # bands: four break points [red_low, yellow_from, green_from, green_high] (ascending);
    # values map linearly onto 0-40 (red), 40-70 (yellow), 70-100 (green) and clip outside.
    bands: list[float] | None = None
    min: float | None = None  # minmax
    max: float | None = None
    target: float | None = None  # target ratio: value / target * 100, capped at 100
    peer_group: str | None = None  # percentile: rank within accounts sharing this column
    points: dict[str, float] | None = None  # categorical attribute: value -> points

    @field_validator("dimension")
    @classmethod
    def _known_dimension(cls, v: str) -> str:
        if v not in DIMENSIONS:
            raise ValueError(f"unknown dimension {v!r}; expected one of {', '.join(DIMENSIONS)}")
        return v

    @model_validator(mode="after")
    def _method_params(self) -> MeasureConfig:
        if self.points is not None:
            return self
        if self.method == "bands":
            b = self.bands
            if b is None or len(b) != 4 or any(x >= y for x, y in zip(b, b[1:], strict=False)):
                raise ValueError("bands needs four strictly ascending break points")
        if self.method == "minmax" and (
            self.min is None or self.max is None or self.min >= self.max
        ):
            raise ValueError("minmax needs min < max")
        if self.method == "target" and not self.target:
            raise ValueError("target needs a non-zero target")
        return self

    @property
    def source(self) -> str:
        """The feature column the measure reads (its own name unless ``feature`` says)."""
        return self.feature or self.name


class SegmentsConfig(_Strict):
    """The score thresholds of the healthy and at-risk segments."""

    healthy: float = 70.0  # score >= healthy is healthy
    at_risk: float = 40.0  # score < at_risk is at risk

    @model_validator(mode="after")
    def _ordered(self) -> SegmentsConfig:
        if not 0 <= self.at_risk <= self.healthy <= 100:
            raise ValueError("segments need 0 <= at_risk <= healthy <= 100")
        return self


class MeasureOverride(_Strict):
    """A per-tier change to one measure of the main model (only the fields given change)."""

    name: str
    weight: float | None = Field(None, gt=0)
    method: Method | None = None
    direction: Direction | None = None
    bands: list[float] | None = None
    min: float | None = None
    max: float | None = None
    target: float | None = None
    peer_group: str | None = None


class TierModel(_Strict):
    """A per-tier model: the tier's own dimension weights and measure changes."""

    dimensions: dict[str, float] | None = None
    measures: list[MeasureOverride] = Field(default_factory=list)


class OverridesConfig(_Strict):
    """Where CSMs' manual overrides live.

    A CSV file with account_id, score and/or segment, reason, expires (ISO date) and optionally
    author.
    """

    uri: str


class ScoringConfig(_Strict):
    """The ``[scoring]`` table: dimension weights, measures, segments and alerts."""

    dimensions: dict[str, float] = Field(
        default_factory=lambda: {
            "usage": 0.25,
            "engagement": 0.15,
            "financial": 0.15,
            "support": 0.15,
            "outcomes": 0.10,
            "satisfaction": 0.20,
        }
    )
    measures: list[MeasureConfig] = Field(default_factory=list)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    min_coverage: float = Field(0.5, ge=0, le=1)
    drop_alert: float = Field(10.0, ge=0)  # points lost in a week that raise an alert
    top_drivers: int = Field(3, ge=1)
    tiers: dict[str, TierModel] = Field(default_factory=dict)  # accounts.tier -> its own model
    overrides: OverridesConfig | None = None

    @model_validator(mode="after")
    def _tier_measures_exist(self) -> ScoringConfig:
        names = {m.name for m in self.measures}
        for tier, model in self.tiers.items():
            for o in model.measures:
                if o.name not in names:
                    raise ValueError(f"tier {tier!r} changes unknown measure {o.name!r}")
        return self

    def for_tier(self, tier: str) -> ScoringConfig:
        """Return the model of one tier: the main model with the tier's changes applied."""
        model = self.tiers[tier]
        changes = {
            o.name: o.model_dump(exclude_none=True, exclude={"name"}) for o in model.measures
        }
        measures = [
            MeasureConfig(**{**m.model_dump(), **changes.get(m.name, {})}) for m in self.measures
        ]
        return self.model_copy(
            update={
                "dimensions": model.dimensions or self.dimensions,
                "measures": measures,
                "tiers": {},
            }
        )

    @field_validator("dimensions")
    @classmethod
    def _dimension_weights(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown dimension {unknown[0]!r}")
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("dimension weights must be >= 0 with a positive sum")
        return v


class ActionRule(_Strict):
    """A playbook: when every condition holds for an account, recommend the action."""

    action: str
    when: dict[str, Any]
    reason: str
    owner: str = "csm"  # "csm" (the account's CSM) or an e-mail address
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    due_days: int = Field(7, ge=0)
    holdout_share: float | None = Field(None, ge=0, lt=1)  # this playbook's own hold-out share


class PlaybookSettings(_Strict):
    """The lifecycle of actions (SPEC 10.1): ``[actions]`` keys beside ``[[actions.playbooks]]``."""

    cooldown_days: int = Field(28, ge=0)  # a done/dismissed action is not re-opened for this long
    expire_days: int = Field(28, ge=1)  # an unworked action whose rule stopped firing expires
    max_new_per_owner: int = Field(10, ge=0)  # new actions per owner and run (0: no limit)
    holdout_share: float = Field(0.1, ge=0, lt=1)  # share of newly qualifying accounts held out
    holdout_key: str = "chs-holdout"  # keys the hash that picks the hold-out group
    recovery_points: float = Field(10.0, gt=0)  # score gain that counts as recovered
    recovery_days: int = Field(56, ge=1)  # ... within this many days of opening
    churn_days: int = Field(90, ge=1)  # churn counted within this many days of opening


class ScheduleConfig(_Strict):
    """When the weekly deployment runs."""

    cron: str = "0 6 * * 1"
    timezone: str = "UTC"


class AlertsConfig(_Strict):
    """Who hears about a failed run."""

    recipients: list[str] = Field(default_factory=list)


class KpiConfig(_Strict):
    """The ``[kpis]`` table: gross margin and how customer lifetime value is computed."""

    gross_margin: float = Field(0.8, gt=0, le=1)
    # subscription: CLV = ARPA x margin / churn. bgnbd: for repeat-purchase (non-contractual)
    # businesses, BG/NBD + Gamma-Gamma per account, which also adds P(alive) and expected
    # purchases as measures of the financial dimension.
    clv_method: Literal["subscription", "bgnbd"] = "subscription"


class CurrencyConfig(_Strict):
    """The currency every amount, ARR and KPI is reported in (rates: the fx_rates dataset)."""

    home: str = Field("USD", pattern=r"^[A-Z]{3}$")  # ISO 4217


class CalibrationConfig(_Strict):
    """How ``p_churn_90d`` is calibrated from the score (SPEC 10.3)."""

    # platt: a logistic curve; isotonic: a monotone step function (pool-adjacent-violators)
    method: Literal["platt", "isotonic"] = "platt"


class RollupConfig(_Strict):
    """How a parent account's score rolls up from its children (scores_rollup.*)."""

    method: Literal["arr_weighted", "worst_child", "mean"] = "arr_weighted"


class TextConfig(_Strict):
    """The ``[text]`` table: sentiment and themes of customer text (tasks/text/, issue 22).

    The text stage runs when a ``feedback`` source is configured or ``enabled = true``;
    ``enabled = false`` turns it off even then. Otherwise no NLP library is imported.
    """

    enabled: bool | None = None
    days: int = Field(90, gt=0)  # window of sentiment_90d, negative_share_90d, complaints_90d
    negative_below: float = Field(-0.05, ge=-1, le=0)  # sentiment < this is negative
    positive_above: float = Field(0.05, ge=0, le=1)  # sentiment > this is positive
    min_language_confidence: float = Field(0.5, ge=0, le=1)  # below: language_unsupported
    rating_scale: tuple[float, float] = (1.0, 5.0)  # feedback.rating's scale (its GX check)
    # tickets whose column holds one of these values are complaints, e.g. {type = ["complaint"]}
    complaint_values: dict[str, list[str]] = Field(default_factory=lambda: {"type": ["complaint"]})
    themes: dict[str, list[str]] | None = None  # theme -> keywords; None: the built-in lexicon
    evidence: int = Field(3, ge=1, le=10)  # texts shown behind each signal

    @field_validator("complaint_values")
    @classmethod
    def _ticket_columns(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if unknown := sorted(set(v) - {"type", "category"}):
            raise ValueError(f"complaint_values maps tickets.type or .category, not {unknown[0]!r}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> TextConfig:
        if self.rating_scale[0] >= self.rating_scale[1]:
            raise ValueError("rating_scale needs min < max")
        return self


def text_enabled(sources: Any, text: Any) -> bool:
    """Say whether the text stage runs: a feedback source, unless ``[text] enabled`` says."""
    enabled = text.get("enabled") if isinstance(text, dict) else getattr(text, "enabled", None)
    return bool(enabled) if enabled is not None else "feedback" in (sources or {})


class Config(_Strict):
    """The whole config file."""

    sources: dict[str, SourceConfig]
    output: OutputConfig = Field(default_factory=OutputConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    surveys: dict[str, SurveyScale] = Field(
        default_factory=lambda: {
            "nps": SurveyScale(min=0, max=10),
            "csat": SurveyScale(min=1, max=5),
            "ces": SurveyScale(min=1, max=7),
        }
    )
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    actions: list[ActionRule] = Field(default_factory=list)
    # written as [actions] keys in the file (parse_config moves them here), the rules then
    # being [[actions.playbooks]]; a plain [[actions]] list keeps these defaults
    playbook_settings: PlaybookSettings = Field(default_factory=PlaybookSettings)
    kpis: KpiConfig = Field(default_factory=KpiConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    currency: CurrencyConfig = Field(default_factory=CurrencyConfig)
    rollup: RollupConfig = Field(default_factory=RollupConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)  # Slack / Teams (SPEC 10.2)
    writeback: WritebackConfig | None = None  # CRM write-back (SPEC 10.2)
    email: EmailConfig = Field(default_factory=EmailConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    base_dir: Path = Path()  # the folder of the config file; set by load_config

    @field_validator("sources")
    @classmethod
    def _known_datasets(cls, v: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        unknown = sorted(set(v) - set(DATASETS))
        if unknown:
            raise ValueError(
                f"unknown dataset {unknown[0]!r}; expected one of {', '.join(DATASETS)}"
            )
        if "accounts" not in v:
            raise ValueError("the accounts source is required")
        for name, src in v.items():
            if src.preset and PRESETS[src.preset].dataset != name:
                raise ValueError(
                    f"preset {src.preset!r} is for the {PRESETS[src.preset].dataset} source, "
                    f"not {name}"
                )
            if src.latest_by and DATASETS[name].key is None:
                raise ValueError(f"latest_by needs a dataset with a unique key; {name} has none")
        return v

    def path(self, p: str) -> Path:
        """Resolve a path from the config relative to the config file."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.base_dir / q).resolve()

    @property
    def text_stage(self) -> bool:
        """Whether the text stage runs (a feedback source, or ``[text] enabled = true``)."""
        return text_enabled(self.sources, self.text)

    @property
    def out_dir(self) -> Path:
        """The output folder, resolved against the config file's folder."""
        return self.path(self.output.dir)

    def fingerprint(self) -> str:
        """Return a short hash of the scoring-relevant config (stored with every run)."""
        # where results are delivered is not scoring: a new webhook or CRM is no config change
        body = self.model_dump(mode="json", exclude={"base_dir", "notify", "writeback"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "(top level)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    if where.startswith("playbook_settings"):  # written as [actions] keys
        where = "actions" + where.removeprefix("playbook_settings")
    return f"{where}: {msg}"


def parse_config(data: dict[str, Any], base_dir: Path, origin: str = "config") -> Config:
    """Build the config model from a parsed TOML document, filling in the default model."""
    data = dict(data)
    scoring = dict(data.get("scoring", {}))
    clv_method = data.get("kpis", {}).get("clv_method", "subscription")
    texts = text_enabled(data.get("sources"), data.get("text"))
    scoring.setdefault(
        "measures", default_measures(purchase_model=clv_method == "bgnbd", text=texts)
    )
    data["scoring"] = scoring
    actions = data.get("actions")
    if isinstance(actions, dict):  # [actions] settings with [[actions.playbooks]] rules
        settings = dict(actions)
        data["actions"] = settings.pop("playbooks", default_actions(text=texts))
        data["playbook_settings"] = settings
    data.setdefault("actions", default_actions(text=texts))
    try:
        cfg = Config(**data, base_dir=base_dir)
    except ValidationError as err:
        raise ConfigError(f"{origin}: {_first_error(err)}.") from None
    return cfg


def load_config(path: Path) -> Config:
    """Load and check the TOML config file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Config file {path} cannot be read: {err}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"Config file {path} is not valid TOML: {err}.") from None
    return parse_config(data, path.resolve().parent, origin=str(path))
