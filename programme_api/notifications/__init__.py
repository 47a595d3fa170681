"""Telling the outside about committed changes: the outbox worker, webhooks, live subscriptions, emails."""
