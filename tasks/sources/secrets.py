"""Credentials of a source: from environment variables or Prefect Secret blocks, never the config.

Resolved here and nowhere else; every value found is also masked in the messages of its source.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

import httpx
from prefect.blocks.system import Secret

from tasks.config import SourceConfig
from tasks.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class _Secrets:
    """The secret values of one source, to pass to the driver and to mask in messages."""

    password: str | None
    values: tuple[str, ...]

    def mask(self, text: str) -> str:
        for v in sorted(self.values, key=len, reverse=True):
            text = text.replace(v, "***")
        return text


def resolve_password(name: str, src: SourceConfig) -> str | None:
    """Return the source's password from ``password_env`` or ``password_secret``, if named."""
    if src.password_env:
        value = os.environ.get(src.password_env)
        if value is None:
            raise ConfigError(
                f"[sources.{name}] password_env names {src.password_env}, which is not set."
            )
        return value
    if src.password_secret:
        try:
            block = cast("Secret[str]", Secret.load(src.password_secret))
            return str(block.get())
        except (ValueError, OSError, httpx.HTTPError, RuntimeError) as err:
            raise ConfigError(
                f"[sources.{name}] password_secret names Prefect Secret block "
                f"{src.password_secret!r}, which cannot be loaded ({type(err).__name__})."
            ) from None
    return None


def resolve_uri(uri: str) -> str:
    """Expand ``${ENV}`` references so credentials stay out of the config file."""

    def _env(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise ConfigError(
                f"Environment variable {m.group(1)} named in a source URI is not set."
            )
        return value

    return _ENV_REF.sub(_env, uri)


def source_secrets(name: str, src: SourceConfig, uri: str) -> _Secrets:
    """Return the source's password and every secret value to hide from messages."""
    password = resolve_password(name, src)
    values = [os.environ.get(m.group(1), "") for m in _ENV_REF.finditer(src.uri)]
    if uri.startswith(("postgresql://", "postgres://")):
        try:
            in_uri = urlsplit(uri).password
        except ValueError:
            in_uri = None
        values += [in_uri or "", unquote(in_uri or "")]
    values.append(password or "")
    return _Secrets(password, tuple(v for v in set(values) if v))


def describe_source(name: str, src: SourceConfig) -> str:
    """Name a source in messages, without any credential (``orders source data/o.csv (orders)``)."""
    uri = _ENV_REF.sub("***", src.uri)
    uri = re.sub(r"^([a-z]+://[^:/@]*):[^@/]*@", r"\1:***@", uri)
    where = src.table or ("query" if src.query else "")
    return f"{name} source {uri}" + (f" ({where})" if where else "")


def named_secret(where: str, env: str | None, block: str | None) -> str | None:
    """Return a secret from the environment variable ``env`` or the Secret block ``block``.

    None when the variable is not set (the caller says what is then not done); a block that
    cannot be loaded is a config error naming ``where`` (e.g. ``[notify.slack]``).
    """
    if block:
        try:
            return str(cast("Secret[str]", Secret.load(block)).get())
        except (ValueError, OSError, httpx.HTTPError, RuntimeError) as err:
            raise ConfigError(
                f"{where} names Prefect Secret block {block!r}, which cannot be loaded "
                f"({type(err).__name__})."
            ) from None
    return (os.environ.get(env) or None) if env else None
