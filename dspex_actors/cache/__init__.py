"""The Cache actor: an in-memory cachetools cache with single flight and a SQLite tier."""

from dspex_actors.cache._actor import (
    Abandon,
    CacheActor,
    CacheOptions,
    Fetch,
    FetchTicket,
    GetCacheStats,
    Store,
)
from dspex_actors.cache._key import cache_key
from dspex_actors.cache._sqlite import CACHE_FILENAME, SQLiteTier

__all__ = [
    "CACHE_FILENAME",
    "Abandon",
    "CacheActor",
    "CacheOptions",
    "Fetch",
    "FetchTicket",
    "GetCacheStats",
    "SQLiteTier",
    "Store",
    "cache_key",
]
