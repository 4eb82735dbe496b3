"""Prefect flows, the command line and deployments."""
