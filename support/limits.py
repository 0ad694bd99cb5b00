"""Fixed-window rate limits in the shared cache (so they hold across ASGI processes)."""

from __future__ import annotations

import time

from django.core.cache import cache


def rate_limit_hit(*, key: str, limit: int, window_s: int = 60) -> float | None:
    """Count one event for `key`; return seconds to wait if over `limit`, else None."""
    window = int(time.time() // window_s)
    cache_key = f"rl:{key}:{window}"
    if cache.add(cache_key, 1, window_s + 5):
        count = 1
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, window_s + 5)
            count = 1
    if count > limit:
        return float(window_s - (time.time() % window_s))
    return None
