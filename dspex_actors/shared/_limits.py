"""``rpm`` and ``tpm`` as token buckets in Redis, shared by every process using one key.

The buckets mean what the local ones mean (``lm/_limits.py``: a burst of about one
second's worth, ``tpm`` charged the actual usage) and are updated atomically by one Lua
script on the Redis server's clock. A Client actor asks :meth:`SharedLimits.try_take` on
its own thread, which never blocks: it keeps one token in hand, fetched ahead from Redis
by the I/O loop, and takes that; without one it says "wait", and Redis's answer (a token,
or how long to wait) wakes the Client. A token held longer than a second is dropped, so
idle processes add no burst. While Redis is unavailable the process's local buckets
limit it instead.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from dspex_actors.lm._limits import RequestLimits, bucket_capacity
from dspex_actors.shared._link import RedisLink, RedisUnavailable

__all__ = ["SharedLimits"]

ANSWER_WAIT = 1.0
"""What try_take says while the script's answer is out (the answer wakes the Client)."""
TOKEN_LIFE = 1.0
"""Seconds a token fetched ahead stays usable."""

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels = {}
local wait = 0
for i = 1, #KEYS do
  local b = (i - 1) * 4
  local rate, cap, need = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 4])
  local v = redis.call('HMGET', KEYS[i], 'level', 'ts')
  local level = tonumber(v[1]) or cap
  local ts = tonumber(v[2]) or now
  level = math.min(cap, level + math.max(0, now - ts) * rate)
  levels[i] = level
  if level < need then wait = math.max(wait, (need - level) / rate) end
end
for i = 1, #KEYS do
  local b = (i - 1) * 4
  local level = levels[i]
  if wait == 0 then level = level - tonumber(ARGV[b + 3]) end
  redis.call('HSET', KEYS[i], 'level', tostring(level), 'ts', tostring(now))
  local idle = tonumber(ARGV[b + 2]) / tonumber(ARGV[b + 1]) + 60
  redis.call('PEXPIRE', KEYS[i], math.ceil(1000 * idle))
end
return tostring(wait)
"""
"""KEYS: buckets; ARGV per bucket: rate/s, capacity, amount to take, level needed.
Takes from every bucket only if each has what it needs; returns the seconds to wait."""

_NEVER_WAIT = "-1e300"


class SharedLimits:
    """The shared buckets of one endpoint and credential (thread-safe, non-blocking)."""

    def __init__(
        self,
        link: RedisLink,
        local: RequestLimits,
        *,
        rpm: tuple[str, float] | None,
        tpm: tuple[str, float] | None,
    ) -> None:
        self._link = link
        self._local = local
        self._rpm = rpm
        self._tpm = tpm
        self._script = link.client.register_script(_TAKE)
        self._lock = threading.Lock()
        self._granted_at: float | None = None
        """When the token in hand was taken from Redis (None: no token)."""
        self._asking = False
        self._retry_at = 0.0
        self._subscribers: list[Callable[[], None]] = []
        if link.usable:
            with self._lock:
                self._asking = True
            self._ask()

    @staticmethod
    def _args(per_minute: float, take: float, need: str | float) -> list[str]:
        return [repr(per_minute / 60.0), repr(bucket_capacity(per_minute)), repr(take), str(need)]

    def try_take(self, now: float) -> float:
        if not self._link.usable:
            return self._local.try_take(now)
        with self._lock:
            granted, self._granted_at = self._granted_at, None
            took = granted is not None and now - granted <= TOKEN_LIFE
            if not took and now < self._retry_at:
                return self._retry_at - now
            if self._asking:
                return 0.0 if took else ANSWER_WAIT
            self._asking = True  # with a token taken: fetch the next one ahead
        self._ask()
        return 0.0 if took else ANSWER_WAIT

    def _ask(self) -> None:
        """Ask Redis for a token (one question out at a time)."""
        keys: list[str] = []
        args: list[str] = []
        if self._tpm is not None:
            keys.append(self._tpm[0])
            args += self._args(self._tpm[1], 0.0, 1.0)
        if self._rpm is not None:
            keys.append(self._rpm[0])
            args += self._args(self._rpm[1], 1.0, 1.0)
        self._link.submit(lambda r: self._script(keys=keys, args=args, client=r), self._answered)

    def _answered(self, answer: object) -> None:
        """On the loop: a token (wait 0), a wait, or Redis is down (local buckets now)."""
        with self._lock:
            self._asking = False
            if not isinstance(answer, RedisUnavailable):
                wait = float(answer.decode() if isinstance(answer, bytes) else str(answer))
                if wait <= 0:
                    self._granted_at = time.monotonic()
                else:
                    self._retry_at = time.monotonic() + wait
            subscribers = list(self._subscribers)
        for wake in subscribers:
            wake()

    def spent(self, now: float, tokens: int) -> None:
        if self._tpm is None or tokens <= 0:
            return
        if not self._link.usable:
            self._local.spent(now, tokens)
            return
        keys = [self._tpm[0]]
        args = self._args(self._tpm[1], float(tokens), _NEVER_WAIT)
        self._link.submit(lambda r: self._script(keys=keys, args=args, client=r))

    def subscribe(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._subscribers.append(wake)

    def unsubscribe(self, wake: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._subscribers.remove(wake)
