"""``SharedState``: everything one ActorSystem shares through one Redis."""

from __future__ import annotations

import threading
from typing import Any

from dspex_actors._loop import IOLoop
from dspex_actors.lm._breaker import EndpointBreaker
from dspex_actors.lm._limits import RequestLimits
from dspex_actors.lm._lm import LM
from dspex_actors.shared._breaker import SharedBreakers
from dspex_actors.shared._cache import SharedCache
from dspex_actors.shared._keys import SharedKeys
from dspex_actors.shared._limits import SharedLimits
from dspex_actors.shared._link import RedisLink

__all__ = ["FOLLOWER_MAX_WAIT", "SharedState"]

FOLLOWER_MAX_WAIT = 300.0
"""Longest a follower waits for a live leader's result before calling the LM itself."""


class SharedState:
    """The Redis link of a system and the shared cache, limits and breakers over it."""

    def __init__(
        self,
        url: str,
        io: IOLoop,
        *,
        prefix: str,
        timeout: float,
        lock_ttl: float,
        cache_ttl: float | None,
    ) -> None:
        self.link = RedisLink(url, io, timeout=timeout)
        self.keys = SharedKeys(prefix)
        self.cache = SharedCache(
            self.link, self.keys, ttl=cache_ttl, lock_ttl=lock_ttl, max_wait=FOLLOWER_MAX_WAIT
        )
        self.breakers = SharedBreakers(self.link, self.keys.breaker_channel)
        self.breakers.start()
        self._lock = threading.Lock()
        self._limits: dict[str, SharedLimits] = {}
        self._attached: set[int] = set()

    def limits_for(self, lm: LM, local: RequestLimits) -> SharedLimits:
        """The shared ``rpm``/``tpm`` buckets of ``lm``'s key (``local`` while Redis is down)."""
        rpm = None if not lm.rpm else (self.keys.bucket(lm, "rpm", lm.rpm), lm.rpm)
        tpm = None if not lm.tpm else (self.keys.bucket(lm, "tpm", lm.tpm), lm.tpm)
        name = f"{rpm}|{tpm}"
        with self._lock:
            limits = self._limits.get(name)
            if limits is None:
                limits = self._limits[name] = SharedLimits(self.link, local, rpm=rpm, tpm=tpm)
            return limits

    def attach_breaker(self, lm: LM, breaker: EndpointBreaker) -> None:
        """Share ``breaker`` (once per breaker)."""
        with self._lock:
            if id(breaker) in self._attached:
                return
            self._attached.add(id(breaker))
        self.breakers.attach(self.keys.breaker(lm), breaker)

    def close(self, timeout: float = 2.0) -> None:
        """Finish the writes in flight (bounded), then close the connections."""
        self.link.close(timeout)

    def snapshot(self) -> dict[str, Any]:
        """For ``ActorSystem.stats()``."""
        counters = dict(self.cache.counters)
        return {**self.link.snapshot(), "prefix": self.keys.prefix, "cache": counters}
