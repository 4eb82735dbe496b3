"""The write-back targets: HubSpot and Salesforce batch APIs (httpx) and a PostgreSQL table.

Each takes records ``(crm_id, {property: value})`` and returns which ids were written and why
the others were not, per id, exactly as the vendor reported it:

- HubSpot CRM v3 ``POST /crm/v3/objects/companies/batch/update`` with
  ``{"inputs": [{"id", "properties"}]}``, at most 100 inputs a call. 200: every input written;
  207 multi-status: ``errors[].context.ids`` name the ones that were not (an error without ids
  fails the whole batch, so nothing is taken as written on a guess). Values go as strings; an
  empty string clears a property.
- Salesforce sObject Collections ``PATCH /services/data/vXX.X/composite/sobjects`` with
  ``{"allOrNone": false, "records": [{"attributes": {"type": "Account"}, "id", ...}]}``, at most
  200 records; the answer is one ``{id, success, errors}`` per record, in request order.
- A PostgreSQL table: one row per account with the latest values, upserted in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import psycopg
from psycopg import sql

from tasks.http_retry import Retry, redact, request
from tasks.writeback.settings import WritebackConfig

Record = tuple[str, dict[str, Any]]
HUBSPOT_API = "https://api.hubapi.com"
HUBSPOT_BATCH = 100
SALESFORCE_BATCH = 200
_FATAL = (401, 403, 404)  # a wrong token, scope or URL fails every later batch alike


@dataclass
class Outcome:
    """What a target did with the records: the ids written and, per failed id, why."""

    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Target(Protocol):
    """A place the scores are written back to."""

    def send(self, records: list[Record]) -> Outcome:
        """Write the records; say per id what happened."""


def _chunks(records: list[Record], size: int) -> Iterator[list[Record]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


def _hubspot_value(v: Any) -> str:
    return "" if v is None else str(v)


def _fail_all(out: Outcome, batch: list[Record], why: str) -> None:
    out.failed.update({crm_id: why for crm_id, _ in batch})


_Batch = Callable[[httpx.Client, list[Record], Outcome], bool]


def _in_batches(token: str, records: list[Record], size: int, batch: _Batch) -> Outcome:
    """Send the records ``size`` at a time with the Bearer token; after a refusal every batch
    would get (``batch`` returns True), the rest are failed unsent.
    """
    out = Outcome()
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30.0) as client:
        batches = list(_chunks(records, size))
        for n, part in enumerate(batches):
            if batch(client, part, out):
                for rest in batches[n + 1 :]:
                    _fail_all(out, rest, "not sent: an earlier batch was refused")
                break
    return out


@dataclass
class HubSpot:
    """HubSpot companies, updated in batches of at most 100 with a private-app token."""

    token: str
    base_url: str = HUBSPOT_API
    retry: Retry = field(default_factory=Retry)

    def _batch(self, client: httpx.Client, batch: list[Record], out: Outcome) -> bool:
        body = {
            "inputs": [
                {"id": i, "properties": {k: _hubspot_value(v) for k, v in props.items()}}
                for i, props in batch
            ]
        }
        url = f"{self.base_url.rstrip('/')}/crm/v3/objects/companies/batch/update"
        r, error = request(client, "POST", url, body, self.retry, (self.token,))
        if error is not None:
            _fail_all(out, batch, f"HubSpot: {error}")
            return r is not None and r.status_code in _FATAL
        failed: dict[str, str] = {}
        doc = r.json() if r is not None and r.content else {}
        for e in doc.get("errors") or []:
            ids = [str(x) for x in (e.get("context") or {}).get("ids") or []]
            why = f"HubSpot: {e.get('category', 'error')}: {e.get('message', '')}".strip()
            if not ids:  # which inputs failed is unknown: none counts as written
                _fail_all(out, batch, why)
                return False
            failed.update({i: why for i in ids})
        out.failed.update(failed)
        out.written += [i for i, _ in batch if i not in failed]
        return False

    def send(self, records: list[Record]) -> Outcome:
        """Update the companies, 100 a call; stop at an answer every batch would get (401/403)."""
        return _in_batches(self.token, records, HUBSPOT_BATCH, self._batch)


@dataclass
class Salesforce:
    """Salesforce Accounts, updated with sObject Collections in batches of at most 200."""

    token: str
    base_url: str
    api_version: str = "v62.0"
    sobject: str = "Account"
    retry: Retry = field(default_factory=Retry)

    def _batch(self, client: httpx.Client, batch: list[Record], out: Outcome) -> bool:
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": self.sobject}, "id": i, **props} for i, props in batch
            ],
        }
        url = f"{self.base_url.rstrip('/')}/services/data/{self.api_version}/composite/sobjects"
        r, error = request(client, "PATCH", url, body, self.retry, (self.token,))
        if error is not None:
            _fail_all(out, batch, f"Salesforce: {error}")
            return r is not None and r.status_code in _FATAL
        results = r.json() if r is not None and r.content else None
        if not isinstance(results, list) or len(results) != len(batch):
            _fail_all(out, batch, "Salesforce: the answer does not list one result per record")
            return False
        for (crm_id, _), res in zip(batch, results, strict=True):
            if res.get("success") is True:
                out.written.append(crm_id)
            else:
                errors = "; ".join(
                    f"{e.get('statusCode', 'ERROR')}: {e.get('message', '')}"
                    for e in res.get("errors") or []
                )
                out.failed[crm_id] = f"Salesforce: {errors or 'not saved'}"
        return False

    def send(self, records: list[Record]) -> Outcome:
        """Update the records, 200 a call, each on its own (``allOrNone: false``)."""
        return _in_batches(self.token, records, SALESFORCE_BATCH, self._batch)


_PG_TYPES = {
    "score": "double precision",
    "segment": "text",
    "top_driver": "text",
    "p_churn_90d": "double precision",
    "as_of": "date",
}


@dataclass
class Table:
    """A PostgreSQL table holding one row per account with its latest values."""

    url: str
    wb: WritebackConfig
    account_ids: dict[str, str]  # crm_id -> account_id
    secrets: tuple[str, ...] = ()

    def _ddl(self) -> sql.Composed:
        names = self.wb.property_names()
        cols = [
            sql.SQL("{} {}").format(sql.Identifier(names[f]), sql.SQL(_PG_TYPES[f]))
            for f in self.wb.fields
        ]
        return sql.SQL(
            "create table if not exists {} (account_id text primary key, crm_id text, {}, "
            "updated_at timestamptz not null)"
        ).format(sql.Identifier(self.wb.table), sql.SQL(", ").join(cols))

    def _upsert(self, cols: list[str]) -> sql.Composed:
        ids = [sql.Identifier(c) for c in ["account_id", "crm_id", *cols, "updated_at"]]
        sets = [sql.SQL("{0} = excluded.{0}").format(i) for i in ids[1:]]
        return sql.SQL(
            "insert into {} ({}) values ({}) on conflict (account_id) do update set {}"
        ).format(
            sql.Identifier(self.wb.table),
            sql.SQL(", ").join(ids),
            sql.SQL(", ").join(sql.Placeholder() * len(ids)),
            sql.SQL(", ").join(sets),
        )

    def send(self, records: list[Record]) -> Outcome:
        """Upsert each account's row in one transaction (all or none).

        The records must carry every field (a table row holds all the latest values).
        """
        cols = list(self.wb.property_names().values())
        now = datetime.now(UTC)
        rows = [
            (self.account_ids[i], i, *(props.get(c) for c in cols), now) for i, props in records
        ]
        try:
            with psycopg.connect(self.url, connect_timeout=10) as con:
                con.execute(self._ddl())
                with con.cursor() as cur:
                    cur.executemany(self._upsert(cols), rows)
        except psycopg.Error as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            why = redact(f"table {self.wb.table}: {first}", self.url, *self.secrets)
            return Outcome(failed={i: why for i, _ in records})
        return Outcome(written=[i for i, _ in records])
