"""E-mail: compose the run's messages, keep them in the outbox, deliver them over SMTP.

The way of a message: report -> outbox -> inbox.
"""
