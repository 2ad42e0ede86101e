"""Rate limits: token buckets for requests (``rpm``) and tokens (``tpm``) per minute.

No sleeping: a bucket says how long to wait. One bucket per endpoint, credential, kind and
rate, shared by the Client actors of LMs that differ only in other settings, so ``rpm``
means requests per minute for that key. A ``tpm`` bucket admits a call while it holds at
least one token and is charged the call's actual usage when it completes (it may go below
zero: later calls then wait until it has refilled).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["RateLimiter", "RequestLimits", "TokenBucket", "bucket_capacity"]

logger = logging.getLogger(__name__)


def bucket_capacity(per_minute: float) -> float:
    """A burst of about one second's worth (at least one)."""
    return max(1.0, math.floor(per_minute / 60.0))


class TokenBucket:
    """``per_minute`` tokens per minute, spread evenly: a burst of at most one second's worth.

    Thread-safe: Client actors sharing a key share the bucket.
    """

    def __init__(self, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = bucket_capacity(per_minute)
        self._tokens = self.capacity
        self._updated = now
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def try_take(self, now: float, amount: float = 1.0, *, need: float | None = None) -> float:
        """Take ``amount`` if at least ``need`` (default: ``amount``) is there (0.0), else the
        seconds until it will be."""
        need = amount if need is None else need
        with self._lock:
            self._refill(now)
            if self._tokens >= need:
                self._tokens -= amount
                return 0.0
            return (need - self._tokens) / self.rate

    def charge(self, now: float, amount: float) -> None:
        """Take ``amount`` whatever is left (usage known only after the call)."""
        with self._lock:
            self._refill(now)
            self._tokens -= amount


class RateLimiter(Protocol):
    """What a Client actor asks before it sends a request, and tells after one completed."""

    def try_take(self, now: float) -> float:
        """Admit one request now (0.0), or the seconds to wait before asking again."""

    def spent(self, now: float, tokens: int) -> None:
        """A completed request used ``tokens`` tokens."""

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (must only post a message) when waiting callers may retry sooner."""

    def unsubscribe(self, wake: Callable[[], None]) -> None:
        """Stop calling ``wake``."""


class RequestLimits:
    """This process's ``rpm`` and ``tpm`` buckets of one endpoint and credential."""

    def __init__(self, rpm: TokenBucket | None, tpm: TokenBucket | None) -> None:
        self.rpm = rpm
        self.tpm = tpm

    def try_take(self, now: float) -> float:
        if self.tpm is not None:
            wait = self.tpm.try_take(now, 0.0, need=1.0)
            if wait > 0:
                return wait
        return 0.0 if self.rpm is None else self.rpm.try_take(now)

    def spent(self, now: float, tokens: int) -> None:
        if self.tpm is not None and tokens > 0:
            self.tpm.charge(now, tokens)

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Local buckets only refill with time: nothing to wake for."""

    def unsubscribe(self, wake: Callable[[], None]) -> None:
        """See :meth:`subscribe`."""
