"""The ``[notify.slack]`` and ``[notify.teams]`` config tables (the webhook URL itself is a secret)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class WebhookConfig(BaseModel):
    """One chat tool's incoming webhook: the environment variable or Secret block holding its URL."""

    model_config = ConfigDict(extra="forbid")

    webhook_env: str | None = None  # default: CHS_SLACK_WEBHOOK_URL / CHS_TEAMS_WEBHOOK_URL
    webhook_secret: str | None = None  # a Prefect Secret block holding the URL

    @model_validator(mode="after")
    def _one_source(self) -> WebhookConfig:
        if self.webhook_env and self.webhook_secret:
            raise ValueError("give either webhook_env or webhook_secret, not both")
        return self


class NotifyConfig(BaseModel):
    """The ``[notify]`` table: which chat tools receive the run's messages."""

    model_config = ConfigDict(extra="forbid")

    slack: WebhookConfig | None = None
    teams: WebhookConfig | None = None

    def targets(self) -> dict[str, WebhookConfig]:
        """Return the configured chat tools by name (``slack``, ``teams``)."""
        return {k: v for k, v in (("slack", self.slack), ("teams", self.teams)) if v is not None}
