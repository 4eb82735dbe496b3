"""Sources: plan what a run needs, read files and databases, cast to the canonical schema,
resolve secrets, and cache extractions (source -> raw -> typed).
"""
