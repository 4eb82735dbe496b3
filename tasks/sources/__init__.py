"""Sources: files and databases, read into the canonical schema (source -> raw -> typed).

Plan what a run needs, read files and databases, cast to the canonical schema, resolve secrets,
and cache extractions.
"""
