"""Errors a user can cause, each carrying one clear sentence and an exit status."""

from __future__ import annotations


class ChsError(Exception):
    """A failure the user can act on; ``str(err)`` is the one sentence shown to them."""

    exit_code = 1


class ConfigError(ChsError):
    """The config file, a flag or a setting is wrong (exit status 2)."""

    exit_code = 2


class SourceError(ChsError):
    """A source cannot be read or lacks what the pipeline needs (exit status 1)."""


class ValidationGateError(ChsError):
    """A dataset failed a dataset-level check, so nothing is scored (exit status 1)."""
