"""The stakeholder report: its context (every number computed and formatted), charts and
rendering (scores -> report.html).
"""
