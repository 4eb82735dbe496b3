"""Pipeline stages as plain functions over Polars frames; Prefect wrappers live in flows/."""
