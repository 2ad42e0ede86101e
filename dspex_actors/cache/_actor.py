"""The Cache actor: a cachetools cache owned by one thread, single flight, SQLite tier.

cachetools caches are not thread-safe; here only the actor's thread touches the cache.
A caller *tells* a :class:`Fetch` and waits on its own reply future. The Cache owns single
flight end to end: a hit completes the reply with a fresh copy; a miss with an identical
request in flight parks the reply with that request's; any other miss makes the Cache
submit the request to the LM's Client actor, addressed back to itself
(:class:`~dspex_actors._types.ReplyTo`). When the outcome arrives in its mailbox
(:class:`~dspex_actors._types.Answered`) it stores a success (in the SQLite tier first,
when there is one, so it is durable before anyone sees it) and completes every parked
reply. Failures are never cached. Every reply future is completed here, on this thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import cachetools
import pykka

from dspex_actors._errors import CacheError, LMUnavailableError
from dspex_actors._lifecycle import ShutdownOnExit
from dspex_actors._reply import deliver
from dspex_actors._types import (
    Answered,
    Cancel,
    ChunkSink,
    LMRequest,
    LMResponse,
    LMToolCall,
    Reply,
    ReplyTo,
    Submit,
)
from dspex_actors.cache._sqlite import SQLiteTier
from supervision import SimpleQueueInbox, Supervised

if TYPE_CHECKING:  # redis-py is an optional extra: imported only with redis_url
    from dspex_actors.shared._cache import SharedCache

__all__ = [
    "CacheActor",
    "CacheOptions",
    "ClientGone",
    "Fetch",
    "GetCacheStats",
    "Store",
    "Withdraw",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CacheOptions:
    """Size, time to live and persistent directory of a Cache actor."""

    maxsize: int = 100_000
    ttl: float | None = None
    cache_dir: str | Path | None = None


class Fetch(NamedTuple):
    """Tell: answer ``request`` (cache key ``key``) into ``reply``.

    On a miss the Cache submits the request to ``client`` (the LM's Client actor), unless
    an identical call is already in flight.
    """

    key: str
    request: LMRequest
    client: pykka.ActorRef[Any]
    reply: Reply
    sink: ChunkSink | None = None
    """For a streamed call: where a miss's pieces go (a hit or a follower gets none)."""


class ClientGone(NamedTuple):
    """Tell (from a waiting caller): the Client actor ``key``'s call was submitted to has
    died without answering (its last messages can be dropped); fail that call's waiters.

    Acted on only if the call in flight for ``key`` was indeed submitted to an actor that
    is dead, so a late or repeated notice is harmless.
    """

    key: str


class Withdraw(NamedTuple):
    """Tell (from a caller that gave up): stop waiting for ``key`` on behalf of ``reply``.

    The other waiters of that call still get its answer; when none is left, the call is
    cancelled at the Client (its concurrency slot is freed) and nothing is cached.
    """

    key: str
    reply: Reply


class Store(NamedTuple):
    """Ask: remember ``response`` under ``key`` (for tools and tests; calls store by themselves)."""

    key: str
    response: LMResponse


class GetCacheStats(NamedTuple):
    """Ask: a dict of counters."""


class _SharedLookup(NamedTuple):
    """From the I/O loop: what Redis said about ``key`` (a response, or None: call the LM)."""

    key: str
    lookup: int
    """Which lookup this answers (a flight withdrawn and asked again has a newer one)."""
    response: LMResponse | None


@dataclasses.dataclass(slots=True)
class _Flight:
    """A miss being answered: the Client it was submitted to, and who waits for it (the
    caller that led first). Lives on the Cache's thread only."""

    client: pykka.ActorRef[Any]
    replies: list[Reply]
    pending: tuple[LMRequest, ChunkSink | None] | None = None
    """While the shared tier is asked (not yet submitted): what to submit on a miss."""
    lookup: int = 0


_Entry = tuple[
    tuple[str, ...],
    tuple[tuple[str, int], ...],
    str,
    tuple[str | None, ...],
    tuple[tuple[LMToolCall, ...], ...],
]
"""How the memory tier holds a response: a tuple of strings and ints only.

Such a tuple is immutable (a hit cannot be corrupted through it) and, unlike a
dataclass, the garbage collector stops tracking it once it has survived a collection or
two. A full collection stalls every thread of the process; with 100k cached responses
it measured 34 ms as dataclasses and 8.5 ms as these tuples (the rest of the process).
"""


def _entry(response: LMResponse) -> _Entry:
    usage = tuple((str(k), int(v)) for k, v in response.usage.items())
    return (
        tuple(response.texts),
        usage,
        response.model,
        tuple(response.finish_reasons),
        response.tool_calls,
    )


def _response(entry: _Entry, *, cached: bool = True) -> LMResponse:
    """A fresh response from an entry (the caller owns it); ``cached``: no request of its own."""
    texts, usage, model, finish_reasons, tool_calls = entry
    return LMResponse(
        texts, dict(usage), model, finish_reasons, cached=cached, tool_calls=tool_calls
    )


class CacheActor(SimpleQueueInbox, ShutdownOnExit, Supervised, pykka.ThreadingActor):
    """Holds the LM response cache of one ActorSystem (daemon thread, like the Clients)."""

    use_daemon_thread = True

    def __init__(self, options: CacheOptions, shared: SharedCache | None = None) -> None:
        super().__init__()
        self.options = options
        self._shared = shared
        self._memory: cachetools.Cache[str, _Entry] = (
            cachetools.TTLCache(options.maxsize, options.ttl)
            if options.ttl is not None
            else cachetools.LRUCache(options.maxsize)
        )
        self._flights: dict[str, _Flight] = {}
        self._lookups = 0
        self._tier: SQLiteTier | None = None
        self._tier_warned: set[str] = set()
        self.counters = {
            "hits": 0,
            "misses": 0,
            "coalesced": 0,
            "persistent_hits": 0,
            "shared_hits": 0,
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
        if isinstance(message, Answered):
            self._answered(message)
            return None
        if isinstance(message, _SharedLookup):
            self._shared_answered(message)
            return None
        if isinstance(message, Withdraw):
            self._withdraw(message.key, message.reply)
            return None
        if isinstance(message, ClientGone):
            self._client_gone(message.key)
            return None
        if isinstance(message, Store):
            self._store(message.key, message.response)
            return None
        if isinstance(message, GetCacheStats):
            return self.stats()
        raise TypeError(f"CacheActor got an unexpected message: {type(message).__name__}")

    def _fetch(self, fetch: Fetch) -> None:
        key, reply = fetch.key, fetch.reply
        entry = self._memory.get(key)
        if entry is not None:
            self.counters["hits"] += 1
            deliver(reply, _response(entry))
            return
        flight = self._flights.get(key)
        if flight is not None:
            self.counters["coalesced"] += 1
            flight.replies.append(reply)
            return
        stored = self._from_tier(key)
        if stored is not None:
            deliver(reply, stored)
            return
        if self._shared is not None:
            self._lookups += 1
            lookup, ref = self._lookups, self.actor_ref
            pending = (fetch.request, fetch.sink)
            self._flights[key] = _Flight(fetch.client, [reply], pending, lookup)
            self._shared.lookup(key, lambda k, r: _tell_quietly(ref, _SharedLookup(k, lookup, r)))
            return
        self._submit(key, _Flight(fetch.client, [reply]), fetch.request, fetch.sink)

    def _submit(
        self, key: str, flight: _Flight, request: LMRequest, sink: ChunkSink | None
    ) -> None:
        """Send a miss to its Client actor; ``flight`` waits for it."""
        self.counters["misses"] += 1
        try:
            flight.client.tell(Submit(request, ReplyTo(self.actor_ref, key), sink))
        except pykka.ActorDeadError:
            self._flights.pop(key, None)
            if self._shared is not None:
                self._shared.abandon(key)
            error = LMUnavailableError(
                "the Client actor stopped before taking the call (it may be restarting)"
            )
            for reply in flight.replies:
                deliver(reply, error)
            return
        self._flights[key] = flight

    def _shared_answered(self, answer: _SharedLookup) -> None:
        """Redis had the answer (or another process's leader gave it), or we lead."""
        key, response = answer.key, answer.response
        flight = self._flights.get(key)
        if flight is None or flight.pending is None or flight.lookup != answer.lookup:
            # everyone withdrew meanwhile: give up the lock unless a newer lookup may hold it
            if flight is None and self._shared is not None and response is None:
                self._shared.abandon(key)
            return
        if response is not None:
            self.counters["hits"] += 1
            self.counters["shared_hits"] += 1
            entry = _entry(response)
            self._memory[key] = entry
            del self._flights[key]
            for reply in flight.replies:
                deliver(reply, _response(entry))
            return
        request, sink = flight.pending
        flight.pending = None
        self._submit(key, flight, request, sink)

    def _answered(self, answered: Answered) -> None:
        key, outcome = str(answered.tag), answered.outcome
        if isinstance(outcome, LMResponse):
            self._store(key, outcome)
            return
        flight = self._flights.pop(key, None)
        if self._shared is not None:
            self._shared.abandon(key)
        for reply in flight.replies if flight is not None else ():
            deliver(reply, outcome)

    def _withdraw(self, key: str, reply: Reply) -> None:
        flight = self._flights.get(key)
        if flight is None or reply not in flight.replies:
            return
        flight.replies.remove(reply)
        if flight.replies:
            return
        del self._flights[key]
        if self._shared is not None:
            self._shared.abandon(key)
        if flight.pending is None:
            with contextlib.suppress(pykka.ActorDeadError):
                flight.client.tell(Cancel(ReplyTo(self.actor_ref, key)))

    def _client_gone(self, key: str) -> None:
        flight = self._flights.get(key)
        if flight is None or flight.pending is not None or flight.client.is_alive():
            return
        error = LMUnavailableError("the Client actor stopped while the call was in flight")
        self._answered(Answered(key, error))

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
        if self._shared is not None:
            self._shared.store(key, response)
        flight = self._flights.pop(key, None)
        for index, reply in enumerate(flight.replies if flight is not None else ()):
            if index == 0:  # the one that led: its own request, with the Client's record
                deliver(
                    reply,
                    dataclasses.replace(_response(entry, cached=False), record=response.record),
                )
            else:
                deliver(reply, _response(entry))

    def _tier_failed(self, what: str, exc: sqlite3.Error) -> None:
        """A failing persistent tier is counted, and logged once per kind of operation (not
        once per read); the memory tier carries on."""
        self.counters["errors"] += 1
        path = self._tier.path if self._tier is not None else "?"
        if what in self._tier_warned:
            logger.debug("persistent cache %s failed again for %s: %s", what, path, exc)
            return
        self._tier_warned.add(what)
        logger.warning(
            "persistent cache %s failed for %s: %s (further failures are counted in stats)",
            what,
            path,
            exc,
        )

    def stats(self) -> dict[str, Any]:
        """Counters, sizes and where the persistent tier lives."""
        return {
            **self.counters,
            "size": len(self._memory),
            "maxsize": self.options.maxsize,
            "ttl": self.options.ttl,
            "in_flight_keys": len(self._flights),
            "persistent": None if self._tier is None else str(self._tier.path),
            "persistent_read_only": self._tier is not None and self._tier.read_only,
        }

    def _shutdown(self, how: str) -> None:
        """Release every waiting reply (callers fall back to calling the LM), close the file."""
        flights, self._flights = self._flights, {}
        for key in flights if self._shared is not None else ():
            self._shared.abandon(key)  # type: ignore[union-attr]
        for flight in flights.values():
            for reply in flight.replies:
                deliver(reply, CacheError(f"the Cache actor {how} while the call was waiting"))
        if self._tier is not None:
            self._tier.close()
            self._tier = None


def _tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    """Tell ``ref`` ``message`` unless it has stopped (loop callbacks outlive actors)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)
