"""Conversations with memory: stored threads whose replies come through the gateway."""
