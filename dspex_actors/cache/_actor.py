"""The Cache actor: a cachetools cache owned by one thread, single flight, SQLite tier.

cachetools caches are not thread-safe; here only the actor's thread touches the cache.
A lookup answers with a hit (a copy), ``lead`` (the caller makes the request and
reports back with Store/Abandon) or ``follow`` (an identical request is already in
flight; the reply is a future completed when the leader reports). So N identical
concurrent misses send one request. Failures are never cached.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import cachetools
import pykka

from dspex_actors._errors import CacheError
from dspex_actors._inbox import SimpleQueueInbox
from dspex_actors.cache._sqlite import SQLiteTier
from dspex_actors.lm._types import LMResponse
from supervision import Supervised

__all__ = [
    "Abandon",
    "CacheActor",
    "CacheOptions",
    "GetCacheStats",
    "Lookup",
    "LookupResult",
    "Store",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CacheOptions:
    """Size, time to live and persistent directory of a Cache actor."""

    maxsize: int = 100_000
    ttl: float | None = None
    cache_dir: str | Path | None = None


class Lookup(NamedTuple):
    """Ask: look ``key`` up; the reply is a LookupResult."""

    key: str


class LookupResult(NamedTuple):
    """``kind`` is "hit" (``response`` set), "lead" or "follow" (``future`` set)."""

    kind: str
    response: LMResponse | None = None
    future: pykka.ThreadingFuture[LMResponse] | None = None


class Store(NamedTuple):
    """From a leader: remember ``response``.

    Asked when there is a persistent tier (the reply comes once the row is durable),
    told otherwise (nothing to wait for: followers are completed either way).
    """

    key: str
    response: LMResponse


class Abandon(NamedTuple):
    """Tell (from a leader): the call failed; followers get ``error``, nothing is cached."""

    key: str
    error: BaseException


class GetCacheStats(NamedTuple):
    """Ask: a dict of counters."""


def _copy(response: LMResponse) -> LMResponse:
    """A copy the caller may not corrupt the cache through, marked as cached."""
    return dataclasses.replace(response, usage=dict(response.usage), cached=True)


def _fail(future: pykka.ThreadingFuture[Any], error: BaseException) -> None:
    future.set_exception(exc_info=(type(error), error, error.__traceback__))


class CacheActor(SimpleQueueInbox, Supervised, pykka.ThreadingActor):
    """Holds the LM response cache of one ActorSystem (daemon thread, like the Clients)."""

    use_daemon_thread = True

    def __init__(self, options: CacheOptions) -> None:
        super().__init__()
        self.options = options
        self._memory: cachetools.Cache[str, LMResponse] = (
            cachetools.TTLCache(options.maxsize, options.ttl)
            if options.ttl is not None
            else cachetools.LRUCache(options.maxsize)
        )
        self._waiting: dict[str, list[pykka.ThreadingFuture[LMResponse]]] = {}
        self._tier: SQLiteTier | None = None
        self.counters = {
            "hits": 0,
            "misses": 0,
            "coalesced": 0,
            "persistent_hits": 0,
            "stores": 0,
            "errors": 0,
        }

    def on_start(self) -> None:
        super().on_start()
        if self.options.cache_dir is not None:
            try:
                self._tier = SQLiteTier.open(self.options.cache_dir)
            except CacheError as exc:
                self.counters["errors"] += 1
                logger.warning("%s; caching in memory only", exc)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Lookup):
            return self._lookup(message.key)
        if isinstance(message, Store):
            self._store(message.key, message.response)
            return None
        if isinstance(message, Abandon):
            for future in self._waiting.pop(message.key, []):
                _fail(future, message.error)
            return None
        if isinstance(message, GetCacheStats):
            return self.stats()
        raise TypeError(f"CacheActor got an unexpected message: {type(message).__name__}")

    def _lookup(self, key: str) -> LookupResult:
        response = self._memory.get(key)
        if response is not None:
            self.counters["hits"] += 1
            return LookupResult("hit", response=_copy(response))
        if key in self._waiting:
            self.counters["coalesced"] += 1
            future: pykka.ThreadingFuture[LMResponse] = pykka.ThreadingFuture()
            self._waiting[key].append(future)
            return LookupResult("follow", future=future)
        if self._tier is not None:
            try:
                stored = self._tier.get(key, self.options.ttl)
            except sqlite3.Error as exc:
                self._tier_failed("read", exc)
                stored = None
            if stored is not None:
                self.counters["hits"] += 1
                self.counters["persistent_hits"] += 1
                self._memory[key] = stored
                return LookupResult("hit", response=_copy(stored))
        self.counters["misses"] += 1
        self._waiting[key] = []
        return LookupResult("lead")

    def _store(self, key: str, response: LMResponse) -> None:
        clean = dataclasses.replace(response, usage=dict(response.usage), cached=False)
        self._memory[key] = clean
        self.counters["stores"] += 1
        if self._tier is not None:
            try:
                self._tier.put(key, clean)
            except sqlite3.Error as exc:
                self._tier_failed("write", exc)
        for future in self._waiting.pop(key, []):
            future.set(_copy(clean))

    def _tier_failed(self, what: str, exc: sqlite3.Error) -> None:
        """A failing persistent tier is logged and counted; the memory tier carries on."""
        self.counters["errors"] += 1
        path = self._tier.path if self._tier is not None else "?"
        logger.warning("persistent cache %s failed for %s: %s", what, path, exc)

    def stats(self) -> dict[str, Any]:
        """Counters, sizes and where the persistent tier lives."""
        return {
            **self.counters,
            "size": len(self._memory),
            "maxsize": self.options.maxsize,
            "ttl": self.options.ttl,
            "in_flight_keys": len(self._waiting),
            "persistent": None if self._tier is None else str(self._tier.path),
        }

    def on_stop(self) -> None:
        self._shutdown("stopped")
        super().on_stop()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._shutdown("crashed")
        super().on_failure(exception_type, exception_value, traceback)

    def _shutdown(self, how: str) -> None:
        """Release waiting followers (they fall back to calling the LM) and close the file."""
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                _fail(future, CacheError(f"the Cache actor {how} while the call was waiting"))
        if self._tier is not None:
            self._tier.close()
            self._tier = None
