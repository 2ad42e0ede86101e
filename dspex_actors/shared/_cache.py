"""The Redis cache tier and single flight across processes.

On a miss of its memory tier the Cache actor asks :meth:`SharedCache.lookup`: a value in
Redis is a hit; otherwise one process becomes the key's leader (``SET NX`` of a lock with
an expiry, kept alive while its call runs) and makes the call, and the others poll with a
growing delay for its result. A leader that crashes stops renewing its lock; when the
lock expires a follower takes over. The leader stores the result (JSON, with the cache's
TTL) and releases the lock; a failure is not stored, the lock is released and a follower
leads. Whenever Redis cannot answer, the process calls the LM itself: never a failed call.

State here (leaders' tokens, waiting tasks) lives on the I/O loop's thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio

from dspex_actors._types import LMResponse
from dspex_actors.cache._sqlite import _decode, _encode
from dspex_actors.shared._keys import SharedKeys
from dspex_actors.shared._link import RedisLink, RedisUnavailable

__all__ = ["SharedCache"]

logger = logging.getLogger(__name__)

LookupDone = Callable[[str, LMResponse | None], None]
"""``done(key, response)``: a response from Redis, or None: make the call yourself."""

FIRST_POLL = 0.005
MAX_POLL = 0.1
"""A follower checks for the leader's result after 5 ms, then ever later, up to 100 ms."""

_FIND_OR_LOCK = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0}
"""
"""One round trip: {1, value} (a hit), {2} (this process now leads) or {0} (another does)."""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_STORE_AND_RELEASE = """
if ARGV[2] == '' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""


class SharedCache:
    """One system's view of the shared cache: lookups, leadership, stores."""

    def __init__(
        self,
        link: RedisLink,
        keys: SharedKeys,
        *,
        ttl: float | None,
        lock_ttl: float,
        max_wait: float,
    ) -> None:
        self._link = link
        self._keys = keys
        self._ttl_ms = "" if ttl is None else str(max(1, round(ttl * 1000)))
        self._lock_ttl = lock_ttl
        self._max_wait = max_wait
        client = link.client
        self._find_or_lock = client.register_script(_FIND_OR_LOCK)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._store_and_release = client.register_script(_STORE_AND_RELEASE)
        self._leading: dict[str, str] = {}
        """Cache key -> lock token, for the calls this process leads."""
        self._renewer: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Task[None]] = {}
        self.counters = {"hits": 0, "led": 0, "followed": 0, "took_over": 0, "fallbacks": 0}

    # -- from the Cache actor's thread ---------------------------------------------

    def lookup(self, key: str, done: LookupDone) -> None:
        """Find ``key`` in Redis, or wait for its leader, or lead: ``done`` says which."""
        if not self._link.usable:
            self.counters["fallbacks"] += 1
            done(key, None)
            return
        if self._link.spawn(self._lookup(key, done)) is None:
            done(key, None)

    def store(self, key: str, response: LMResponse) -> None:
        """Store a completed call (and release its lock if this process led it)."""
        self._link.spawn(self._store(key, _encode(response)), write=True)

    def abandon(self, key: str) -> None:
        """The call of ``key`` failed or nobody waits for it: stop waiting, release a lock."""
        self._link.spawn(self._abandon(key), write=True)

    # -- on the loop -----------------------------------------------------------------

    async def _lookup(self, key: str, done: LookupDone) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._waiting[key] = task
        try:
            response = await self._find_or_lead(key)
        except RedisUnavailable:
            self.counters["fallbacks"] += 1
            response = None
        except asyncio.CancelledError:
            return
        finally:
            if self._waiting.get(key) is task:
                del self._waiting[key]
        done(key, response)

    async def _find_or_lead(self, key: str) -> LMResponse | None:
        value_key, lock_key = self._keys.value(key), self._keys.lock(key)
        lock_ms = max(1, round(self._lock_ttl * 1000))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._max_wait
        followed = False
        while True:
            token = secrets.token_hex(8)
            found = await self._link.run(
                functools.partial(self._find_or_lock, [value_key, lock_key], [token, lock_ms])
            )
            if found[0] == 1:
                return self._hit(key, found[1])
            if found[0] == 2:
                self.counters["took_over" if followed else "led"] += 1
                self._lead(key, token)
                return None
            if not followed:
                followed = True
                self.counters["followed"] += 1
            delay = FIRST_POLL
            while True:
                if loop.time() >= give_up:
                    logger.warning("gave up waiting for another process's call; calling the LM")
                    return None
                await asyncio.sleep(delay)
                delay = min(MAX_POLL, delay * 1.5)
                value, held = await self._link.run(
                    lambda r: _get_and_exists(r, value_key, lock_key)
                )
                if value is not None:
                    return self._hit(key, value)
                if not held:  # the leader released (failed) or its lock expired (crashed)
                    break

    def _hit(self, key: str, value: bytes | str) -> LMResponse | None:
        try:
            response = _decode(value.decode("utf-8") if isinstance(value, bytes) else value)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            logger.warning("undecodable value in Redis for a cache key (%s); calling the LM", exc)
            return None
        self.counters["hits"] += 1
        return response

    def _lead(self, key: str, token: str) -> None:
        self._leading[key] = token
        if self._renewer is None:
            self._renewer = asyncio.ensure_future(self._keep_alive())

    async def _keep_alive(self) -> None:
        """Renew every lock this process holds while its calls run (one task, one round
        trip per period; a crash stops renewing them)."""
        lock_ms = max(1, round(self._lock_ttl * 1000))
        try:
            while self._leading:
                await asyncio.sleep(self._lock_ttl / 3)
                held = list(self._leading.items())
                if held:
                    with contextlib.suppress(RedisUnavailable):
                        await self._link.run(functools.partial(self._renew_all, held, lock_ms))
        finally:
            self._renewer = None

    async def _renew_all(
        self, held: list[tuple[str, str]], lock_ms: int, client: redis.asyncio.Redis
    ) -> Any:
        pipe = client.pipeline(transaction=False)
        for key, token in held:
            await self._renew(keys=[self._keys.lock(key)], args=[token, lock_ms], client=pipe)
        return await pipe.execute()

    def _give_up_lead(self, key: str) -> str | None:
        return self._leading.pop(key, None)

    async def _store(self, key: str, value: str) -> None:
        token = self._give_up_lead(key) or ""
        args: list[Any] = [value, self._ttl_ms, token]
        keys = [self._keys.value(key), self._keys.lock(key)]
        try:
            await self._link.run(lambda r: self._store_and_release(keys=keys, args=args, client=r))
        except RedisUnavailable:
            logger.debug("a cache entry was not stored in Redis (unavailable)")

    async def _abandon(self, key: str) -> None:
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            waiting.cancel()
        token = self._give_up_lead(key)
        if token is None:
            return
        lock_key = self._keys.lock(key)
        try:
            await self._link.run(lambda r: self._release(keys=[lock_key], args=[token], client=r))
        except RedisUnavailable:
            logger.debug("a single-flight lock was left to expire (Redis unavailable)")


async def _get_and_exists(
    client: redis.asyncio.Redis, value_key: str, lock_key: str
) -> tuple[bytes | None, int]:
    """The value of ``value_key`` and whether ``lock_key`` exists, in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.get(value_key)
    pipe.exists(lock_key)
    value, held = await pipe.execute()
    return value, int(held)

