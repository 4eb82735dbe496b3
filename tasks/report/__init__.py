"""The stakeholder report: its context, charts and rendering (scores -> report.html).

The context has every number computed and formatted.
"""
