"""Open the history store that ``[output] history`` names (DuckDB file or PostgreSQL URL)."""

from __future__ import annotations

from pathlib import Path

from tasks.config import Config
from tasks.errors import ConfigError
from tasks.history.duckdb_store import DuckDBHistory
from tasks.history.postgres_store import PostgresHistory
from tasks.history.schema import HistoryStore
from tasks.history.sql import LOCK_TIMEOUT_S
from tasks.sources.secrets import resolve_uri


def open_history(cfg: Config, lock_timeout: float = LOCK_TIMEOUT_S) -> HistoryStore:
    """Open the history store named by ``[output] history``."""
    url = cfg.output.history
    if url.startswith("duckdb:///"):
        rest = url[len("duckdb:///") :]
        return DuckDBHistory(Path(rest) if rest.startswith("/") else cfg.path(rest), lock_timeout)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresHistory(resolve_uri(url))
    raise ConfigError(
        f"[output] history {url!r} is not supported; use duckdb:///path or postgresql://..."
    )
