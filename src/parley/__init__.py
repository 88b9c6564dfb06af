"""Parley: a self-hostable, multi-tenant AI API platform."""

__version__ = "0.1.0"
