"""Chat: the run's Slack and Teams messages, kept in an outbox, delivered to incoming webhooks.

The way of a message: scores -> ``outbox/chat/*.json`` -> webhook (SPEC 10.2).
"""
