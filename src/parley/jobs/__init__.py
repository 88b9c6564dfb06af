"""Durable background jobs: enqueued with the write that causes them, run with retries."""
