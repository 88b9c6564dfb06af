"""API keys: created by admins, shown once, stored hashed, revoked everywhere at once."""
