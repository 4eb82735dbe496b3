"""The history store: every score, measure contribution, KPI and action of every as-of date.

Schema, shared SQL, DuckDB, PostgreSQL, and the in-memory view a backfill pass reads.
"""
