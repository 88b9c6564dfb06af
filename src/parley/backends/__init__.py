"""Interfaces of the swappable backends and their in-process / Redis implementations."""
