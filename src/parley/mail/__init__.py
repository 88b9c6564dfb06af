"""Outgoing email: SMTP when configured, otherwise `.eml` files in the outbox folder."""
