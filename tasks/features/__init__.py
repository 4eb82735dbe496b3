"""Per-account features as of one or many dates (validated datasets -> features).

One module per family of signals over shared windowed sums.
"""
