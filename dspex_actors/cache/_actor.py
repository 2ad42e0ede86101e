"""The Cache actor: a cachetools cache owned by one thread, single flight, SQLite tier.

cachetools caches are not thread-safe; here only the actor's thread touches the cache.
A caller *tells* a :class:`Fetch` and waits on its own reply future: a hit completes it
with a fresh copy; a miss with an identical request already in flight parks it until
that request's leader reports (so N identical concurrent misses send one request); any
other miss makes the caller the leader, and the Cache starts the LM call for it at once
(the caller's ``start`` callable, e.g. a tell to the Client actor with the same reply
future), which saves the caller a round trip. The leader reports back with Store or
Abandon. Failures are never cached.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import cachetools
import pykka

from dspex_actors._errors import CacheError
from dspex_actors._inbox import SimpleQueueInbox
from dspex_actors._lifecycle import ShutdownOnExit
from dspex_actors.cache._sqlite import SQLiteTier
from dspex_actors.lm._types import LMResponse
from supervision import Supervised

__all__ = [
    "Abandon",
    "CacheActor",
    "CacheOptions",
    "Fetch",
    "FetchTicket",
    "GetCacheStats",
    "Store",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CacheOptions:
    """Size, time to live and persistent directory of a Cache actor."""

    maxsize: int = 100_000
    ttl: float | None = None
    cache_dir: str | Path | None = None


@dataclasses.dataclass(slots=True)
class FetchTicket:
    """What the Cache made of one :class:`Fetch`, written on the Cache's thread.

    ``role`` is "" until the Cache has handled the Fetch, then "hit", "follow" or
    "lead". The caller reads it once its reply future is settled (or while waiting, to
    know which actor the reply now depends on).
    """

    role: str = ""


class Fetch(NamedTuple):
    """Tell: answer ``key`` into ``reply``, from the cache or by starting the call.

    On a miss that makes the caller the leader, the Cache calls ``start()`` on its own
    thread (it must not block: a tell); ``start`` is responsible for ``reply`` from then
    on. An exception from ``start`` fails ``reply`` with it.
    """

    key: str
    start: Callable[[], None]
    reply: pykka.ThreadingFuture[LMResponse]
    ticket: FetchTicket


class Store(NamedTuple):
    """From a leader: remember ``response``.

    Asked when there is a persistent tier (the reply comes once the row is durable),
    told otherwise (nothing to wait for: followers are completed either way).
    """

    key: str
    response: LMResponse


class Abandon(NamedTuple):
    """Tell (from a leader): the call failed; followers get ``error``, nothing is cached.

    With ``ticket`` (a caller that gave up before it knew its role), it only counts if
    that Fetch made the caller the leader; a follower's reply is just dropped.
    """

    key: str
    error: BaseException
    ticket: FetchTicket | None = None


class GetCacheStats(NamedTuple):
    """Ask: a dict of counters."""


_Entry = tuple[tuple[str, ...], tuple[tuple[str, int], ...], str, tuple[str | None, ...]]
"""How the memory tier holds a response: a tuple of strings and ints only.

Such a tuple is immutable (a hit cannot be corrupted through it) and, unlike a
dataclass, the garbage collector stops tracking it once it has survived a collection or
two. A full collection stalls every thread of the process; with 100k cached responses
it measured 34 ms as dataclasses and 8.5 ms as these tuples (the rest of the process).
"""


def _entry(response: LMResponse) -> _Entry:
    usage = tuple((str(k), int(v)) for k, v in response.usage.items())
    return (tuple(response.texts), usage, response.model, tuple(response.finish_reasons))


def _response(entry: _Entry) -> LMResponse:
    """A fresh response from an entry, marked as cached (the caller owns it)."""
    texts, usage, model, finish_reasons = entry
    return LMResponse(texts, dict(usage), model, finish_reasons, cached=True)


def _fail(future: pykka.ThreadingFuture[Any], error: BaseException) -> None:
    future.set_exception(exc_info=(type(error), error, error.__traceback__))


class CacheActor(SimpleQueueInbox, ShutdownOnExit, Supervised, pykka.ThreadingActor):
    """Holds the LM response cache of one ActorSystem (daemon thread, like the Clients)."""

    use_daemon_thread = True

    def __init__(self, options: CacheOptions) -> None:
        super().__init__()
        self.options = options
        self._memory: cachetools.Cache[str, _Entry] = (
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
        if isinstance(message, Fetch):
            self._fetch(message)
            return None
        if isinstance(message, Store):
            self._store(message.key, message.response)
            return None
        if isinstance(message, Abandon):
            self._abandon(message)
            return None
        if isinstance(message, GetCacheStats):
            return self.stats()
        raise TypeError(f"CacheActor got an unexpected message: {type(message).__name__}")

    def _fetch(self, fetch: Fetch) -> None:
        key, ticket, reply = fetch.key, fetch.ticket, fetch.reply
        entry = self._memory.get(key)
        if entry is not None:
            self.counters["hits"] += 1
            ticket.role = "hit"
            reply.set(_response(entry))
            return
        waiting = self._waiting.get(key)
        if waiting is not None:
            self.counters["coalesced"] += 1
            ticket.role = "follow"
            waiting.append(reply)
            return
        stored = self._from_tier(key)
        if stored is not None:
            ticket.role = "hit"
            reply.set(stored)
            return
        self.counters["misses"] += 1
        self._waiting[key] = []
        ticket.role = "lead"
        try:
            fetch.start()
        except Exception as exc:  # the leader hears of it and reports back with Abandon
            _fail(reply, exc)

    def _abandon(self, abandon: Abandon) -> None:
        ticket = abandon.ticket
        if ticket is not None and ticket.role != "lead":
            return
        for future in self._waiting.pop(abandon.key, []):
            _fail(future, abandon.error)

    def _from_tier(self, key: str) -> LMResponse | None:
        """A hit from the persistent tier (kept in memory from then on), else None."""
        if self._tier is None:
            return None
        try:
            stored = self._tier.get(key, self.options.ttl)
        except sqlite3.Error as exc:
            self._tier_failed("read", exc)
            return None
        if stored is None:
            return None
        self.counters["hits"] += 1
        self.counters["persistent_hits"] += 1
        entry = _entry(stored)
        self._memory[key] = entry
        return _response(entry)

    def _store(self, key: str, response: LMResponse) -> None:
        entry = _entry(response)
        self._memory[key] = entry
        self.counters["stores"] += 1
        if self._tier is not None:
            try:
                self._tier.put(key, response)
            except sqlite3.Error as exc:
                self._tier_failed("write", exc)
        for future in self._waiting.pop(key, []):
            future.set(_response(entry))

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

    def _shutdown(self, how: str) -> None:
        """Release waiting followers (they fall back to calling the LM) and close the file."""
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                _fail(future, CacheError(f"the Cache actor {how} while the call was waiting"))
        if self._tier is not None:
            self._tier.close()
            self._tier = None
