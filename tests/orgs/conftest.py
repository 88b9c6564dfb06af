"""Fixtures for the organisation tests: apps with their own settings (tight limits), and
clients that present themselves from any address (shared with the accounts tests)."""

from tests.accounts.conftest import _exit_stack, connect, make_app

__all__ = ["_exit_stack", "connect", "make_app"]
