"""One HTTP request with the retries every outbound API call here shares (httpx).

429 and 5xx answers, refused connections and timeouts are retried, waiting what the server's
``Retry-After`` asks (seconds or an HTTP date) or else an exponential backoff, both bounded by
``max_wait_s``. Other answers return at once. ``secret`` (a webhook URL, a token) is replaced
in every error text, so it cannot reach a log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry."""

    attempts: int = 4
    backoff_s: float = 1.0
    max_wait_s: float = 30.0
    sleep: Callable[[float], Any] = time.sleep


def retry_after(response: httpx.Response, fallback: float, cap: float) -> float:
    """Return the seconds ``Retry-After`` asks for (``fallback`` without one), at most ``cap``."""
    raw = response.headers.get("Retry-After", "").strip()
    try:
        wait = float(raw)
    except ValueError:
        try:
            wait = (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            wait = fallback
    return min(max(wait, 0.0), cap)


def redact(text: str, *secrets: str) -> str:
    """Replace each secret in ``text``."""
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) > 1:
            text = text.replace(s, "***")
    return text


def request(
    client: httpx.Client,
    method: str,
    url: str,
    body: Any,
    retry: Retry,
    secrets: tuple[str, ...] = (),
) -> tuple[httpx.Response | None, str | None]:
    """Send one JSON request; return the final response (None if none came) and why it failed.

    The error is None for a 2xx answer; otherwise one sentence, secrets redacted.
    """
    why, last = "not attempted", None
    for attempt in range(1, retry.attempts + 1):
        backoff = min(retry.backoff_s * 2 ** (attempt - 1), retry.max_wait_s)
        try:
            r = client.request(method, url, json=body)
        except httpx.HTTPError as err:
            why, wait, last = redact(f"{type(err).__name__}: {err}", url, *secrets), backoff, None
        else:
            last = r
            if 200 <= r.status_code < 300:
                return r, None
            why = f"the server answered {r.status_code} {redact(r.text[:300], url, *secrets)}"
            if r.status_code != 429 and r.status_code < 500:
                return r, why.strip()  # a retry cannot cure a 4xx
            wait = retry_after(r, backoff, retry.max_wait_s)
        if attempt < retry.attempts:
            retry.sleep(wait)
    return last, f"{why.strip()} (gave up after {retry.attempts} attempts)"
