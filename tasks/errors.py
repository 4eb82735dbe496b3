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

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # a network or server hiccup that a retry may cure


def is_transient(exc: BaseException) -> bool:
    """Return whether retrying could help: never for a user's error, yes for an unknown one."""
    if isinstance(exc, ChsError):
        return bool(getattr(exc, "transient", False))
    return True


class HistoryError(ChsError):
    """The history store cannot be reached or was lost mid-write (exit status 1)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # the server was down or restarting: a retry may cure it


class ValidationGateError(ChsError):
    """A dataset failed a dataset-level check, so nothing is scored (exit status 1)."""
