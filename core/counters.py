"""Counters in the shared cache (Redis), counted atomically across processes."""

from __future__ import annotations

from django.core.cache import cache


def counter_claim(key: str, *, timeout: int) -> int:
    """Add one to the counter `key` (created for `timeout` seconds) and return the new
    count: one SET NX and one INCR, so parallel requests each see their own number."""
    cache.add(key, 0, timeout=timeout)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between the two calls: this is the first
        cache.add(key, 1, timeout=timeout)
        return 1
