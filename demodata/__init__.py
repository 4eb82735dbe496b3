"""Seeded, realistic sample data and its config for ``chs demo``: not part of the pipeline."""
