"""The report's Jinja2 templates and stylesheet (``templates/``), shipped as package data."""
