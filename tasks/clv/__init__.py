"""Customer lifetime value: the BG/NBD + Gamma-Gamma model and its per-account features."""
