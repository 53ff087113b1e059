"""Errors shared by every layer."""

from __future__ import annotations


class ImproperEnvironment(Exception):
    """An environment variable holds a value Keelson cannot use."""
