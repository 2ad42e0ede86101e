"""The Cache actor: an in-memory cachetools cache with single flight and a SQLite tier."""

from dspex_actors.cache._actor import (
    CacheActor,
    CacheOptions,
    Fetch,
    GetCacheStats,
    Store,
)
from dspex_actors.cache._key import cache_key
from dspex_actors.cache._sqlite import CACHE_FILENAME, SQLiteTier

__all__ = [
    "CACHE_FILENAME",
    "CacheActor",
    "CacheOptions",
    "Fetch",
    "GetCacheStats",
    "SQLiteTier",
    "Store",
    "cache_key",
]
