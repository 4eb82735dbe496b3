"""How much work the playbooks give a CSM, week by week, from a history store (issue 15).

    .venv/bin/python benchmarks/action_load.py out/history.duckdb

Prints one row per stored date: fired = new + carried + deferred + holdout (as the run summary
counts them), expired, and the open backlog (open or in progress) per owner: median and max.
Reads the DuckDB history store only; writes nothing.
"""

from __future__ import annotations

import sys

import duckdb

_QUERY = """
with fired as (
    select as_of,
        count(*) filter (where last_fired = as_of and status in
            ('open', 'in_progress', 'snoozed', 'deferred', 'holdout')) as fired,
        count(*) filter (where last_fired = as_of and status = 'deferred') as deferred,
        count(*) filter (where last_fired = as_of and status = 'holdout') as holdout
    from action_history group by as_of
), events as (
    select as_of,
        count(*) filter (where status = 'open' and source = 'rule') as new,
        count(*) filter (where status = 'expired') as expired
    from action_events group by as_of
), backlog as (
    select as_of, owner, count(*) as n from action_history
    where status in ('open', 'in_progress') group by as_of, owner
), per_owner as (
    select as_of, count(*) as owners, median(n) as median_open, max(n) as max_open
    from backlog group by as_of
)
select f.as_of, f.fired, coalesce(e.new, 0) as new,
    f.fired - coalesce(e.new, 0) - f.deferred - f.holdout as carried,
    f.deferred, f.holdout, coalesce(e.expired, 0) as expired,
    coalesce(p.owners, 0) as owners, p.median_open, p.max_open
from fired f left join events e using (as_of) left join per_owner p using (as_of)
order by f.as_of
"""


def main(path: str) -> None:
    """Print the weekly table of the history store at ``path``."""
    con = duckdb.connect(path, read_only=True)
    try:
        rows = con.sql(_QUERY).fetchall()
    finally:
        con.close()
    head = ("as_of", "fired", "new", "carried", "deferred", "holdout", "expired", "owners")
    out = sys.stdout
    out.write("| " + " | ".join((*head, "open/owner median", "max")) + " |\n")
    out.write("|" + "---|" * (len(head) + 2) + "\n")
    for r in rows:
        out.write(
            "| "
            + " | ".join(
                "" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in r
            )
            + " |\n"
        )


if __name__ == "__main__":
    main(sys.argv[1])
