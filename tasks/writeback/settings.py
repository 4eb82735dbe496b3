"""The ``[writeback]`` config table: where the scores are written back and under which names."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FIELDS = ("score", "segment", "top_driver", "p_churn_90d", "as_of")
# the property (HubSpot) / field API name (Salesforce) / column (table) of each field by default
DEFAULT_PROPERTIES = {
    "hubspot": {
        "score": "chs_health_score",
        "segment": "chs_health_segment",
        "top_driver": "chs_top_driver",
        "p_churn_90d": "chs_p_churn_90d",
        "as_of": "chs_health_as_of",
    },
    "salesforce": {
        "score": "Health_Score__c",
        "segment": "Health_Segment__c",
        "top_driver": "Health_Top_Driver__c",
        "p_churn_90d": "Health_P_Churn_90d__c",
        "as_of": "Health_As_Of__c",
    },
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# a password written into a database URL (user:secret@ or ?password=), once ${ENV} are removed
_PASSWORD_IN_URI = re.compile(r"^[a-z]+://[^/@]*:[^@/]+@|[?&]password=[^&]")
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


class WritebackConfig(BaseModel):
    """``[writeback]``: target, fields and their CRM names, credentials and whether runs apply."""

    model_config = ConfigDict(extra="forbid")

    target: str  # "hubspot", "salesforce" or a postgresql:// URL
    fields: list[str] = Field(default_factory=lambda: list(FIELDS))
    properties: dict[str, str] = Field(default_factory=dict)  # field -> CRM property name
    apply: bool = False  # the weekly flow writes back after each run
    base_url: str | None = None  # default: the vendor's API (or your Salesforce instance)
    token_env: str = "CHS_CRM_TOKEN"
    token_secret: str | None = None  # a Prefect Secret block holding the token
    api_version: str = Field("v62.0", pattern=r"^v\d+\.\d$")  # Salesforce REST version
    table: str = "chs_account_health"  # the database target's table

    @field_validator("target")
    @classmethod
    def _known_target(cls, v: str) -> str:
        if v not in ("hubspot", "salesforce") and not v.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError(
                f"unknown target {v!r}; use hubspot, salesforce or a postgresql:// URL"
            )
        if _PASSWORD_IN_URI.search(_ENV_REF.sub("", v)):
            raise ValueError(
                "target contains a password; credentials never live in the config file: "
                "use ${ENV} in the URL"
            )
        return v

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: list[str]) -> list[str]:
        unknown = [f for f in v if f not in FIELDS]
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}; expected some of {', '.join(FIELDS)}")
        if not v or len(set(v)) != len(v):
            raise ValueError("fields must name each field once, and at least one")
        return v

    @model_validator(mode="after")
    def _names(self) -> WritebackConfig:
        unknown = sorted(set(self.properties) - set(FIELDS))
        if unknown:
            raise ValueError(f"properties maps unknown field {unknown[0]!r}")
        if self.kind == "salesforce" and self.base_url is None:
            raise ValueError("the salesforce target needs base_url (your instance's URL)")
        for name in [*self.property_names().values(), self.table]:
            if not _IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a plain property or column name")
        return self

    @property
    def kind(self) -> str:
        """The target's kind: ``hubspot``, ``salesforce`` or ``postgresql``."""
        return self.target if self.target in ("hubspot", "salesforce") else "postgresql"

    def property_names(self) -> dict[str, str]:
        """Return each written field's name in the target (the config's mapping over defaults)."""
        defaults = DEFAULT_PROPERTIES.get(self.kind, {f: f for f in FIELDS})
        return {f: self.properties.get(f, defaults[f]) for f in self.fields}
