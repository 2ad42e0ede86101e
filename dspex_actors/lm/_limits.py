"""A token bucket for the requests-per-minute limit (no sleeping: it says how long to wait).

One bucket per endpoint, credential and rate, shared by the Client actors of LMs that
differ only in other settings, so ``rpm`` means requests per minute for that key.
"""

from __future__ import annotations

import logging
import math
import threading

__all__ = ["TokenBucket"]

logger = logging.getLogger(__name__)


class TokenBucket:
    """``rpm`` requests per minute, spread evenly: a burst of at most one second's worth.

    Thread-safe: Client actors sharing a key share the bucket.
    """

    def __init__(self, rpm: float, now: float) -> None:
        self.rate = rpm / 60.0
        self.capacity = max(1.0, math.floor(self.rate))
        self._tokens = self.capacity
        self._updated = now
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def try_take(self, now: float) -> float:
        """Take a token if one is available (0.0), else the seconds until one will be."""
        with self._lock:
            self._refill(now)
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate
