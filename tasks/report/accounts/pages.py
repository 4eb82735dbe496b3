"""Which accounts get a page, where each page lives, and writing them with one template.

Pages go to ``<stage>/accounts/`` before the date is published, so they appear with the rest
of the date's files. Page files are named by the account id, percent-encoded where it is not a
plain file name (``/`` or ``%`` in an id cannot escape the folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import polars as pl

from tasks.config import Config
from tasks.lifecycle import WORK
from tasks.report.accounts.context import PageData, page_context
from tasks.report.templates import environment

PageMode = Literal["listed", "all"]
PAGES_DIR = "accounts"


def page_file(account_id: str) -> str:
    """Return the file name of an account's page: ``<account_id>.html``, percent-encoded."""
    return quote(account_id, safe="-_.~@+=,") + ".html"


def page_href(account_id: str) -> str:
    """Return the page's address relative to its own folder (the file name, URL-escaped)."""
    return quote(page_file(account_id), safe="-_.~@+=,")


def page_accounts(
    scored: pl.DataFrame, actions: pl.DataFrame, rollup: pl.DataFrame | None, mode: PageMode
) -> list[str]:
    """Return the accounts that get a page: at risk, with an open action or a parent whose
    children roll up at risk (every scored account with ``mode="all"``), sorted.
    """
    if mode == "all":
        return sorted(scored["account_id"].to_list())
    ids = set(scored.filter(pl.col("segment") == "at_risk")["account_id"])
    if "status" in actions.columns:
        actions = actions.filter(pl.col("status").is_in(WORK))
    ids |= set(actions["account_id"])
    if rollup is not None and not rollup.is_empty():
        ids |= set(rollup.filter(pl.col("segment") == "at_risk")["account_id"])
    return sorted(ids & set(scored["account_id"]))


@dataclass(frozen=True)
class PagePlan:
    """The pages of one run: which accounts, and each page's link from the report and e-mails."""

    ids: list[str] = field(default_factory=list)
    hrefs: dict[str, str] = field(default_factory=dict)  # from the report's folder
    urls: dict[str, str] = field(default_factory=dict)  # from an e-mail: absolute

    @classmethod
    def of(cls, ids: list[str], cfg: Config, as_of: date) -> PagePlan:
        """Plan the pages of ``ids``; e-mail links start at ``[report] base_url`` when set,
        else they are ``file://`` addresses of the published folder.
        """
        base = cfg.report.base_url.rstrip("/")
        folder = cfg.out_dir / as_of.isoformat() / PAGES_DIR
        urls = {
            a: f"{base}/{as_of.isoformat()}/{PAGES_DIR}/{page_href(a)}"
            if base
            else (folder / page_file(a)).resolve().as_uri()
            for a in ids
        }
        return cls(ids, {a: f"{PAGES_DIR}/{page_href(a)}" for a in ids}, urls)


def links(plan: PagePlan) -> dict[str, dict[str, str]]:
    """Return the report context's ``account_pages``: account_id -> href and e-mail url."""
    return {a: {"href": plan.hrefs[a], "url": plan.urls[a]} for a in plan.ids}


def write_pages(data: PageData, stage: Path) -> int:
    """Render every planned page with one compiled template into ``<stage>/accounts/``."""
    folder = stage / PAGES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    template = environment().get_template("account.html.j2")
    n = 0
    for account in data.scored:
        html = template.render(**page_context(data, account))
        (folder / page_file(account)).write_text(html, encoding="utf-8")
        n += 1
    return n


def own_hrefs(ids: list[str]) -> Mapping[str, str]:
    """Return each page's link from a sibling page (the same folder)."""
    return {a: page_href(a) for a in ids}
