"""A token bucket for the requests-per-minute limit (no sleeping: it says how long to wait)."""

from __future__ import annotations

import logging
import math

__all__ = ["TokenBucket"]

logger = logging.getLogger(__name__)


class TokenBucket:
    """``rpm`` requests per minute, spread evenly: a burst of at most one second's worth.

    Not thread-safe; the Client actor uses it on its own thread only.
    """

    def __init__(self, rpm: float, now: float) -> None:
        self.rate = rpm / 60.0
        self.capacity = max(1.0, math.floor(self.rate))
        self._tokens = self.capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available (0 when one is available now)."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        """Consume one token (call only after ``wait_time`` returned 0)."""
        self._refill(now)
        self._tokens -= 1.0
