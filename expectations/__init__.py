"""The GX suites, one JSON file per canonical dataset, shipped as package data."""
