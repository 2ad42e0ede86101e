"""Which failures are retried, and how long to wait before the next attempt."""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time

from dspex_actors._errors import (
    LMConnectionError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMTLSError,
)

__all__ = ["backoff_delay", "is_retryable", "parse_retry_after"]

logger = logging.getLogger(__name__)


def is_retryable(error: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are retried; other 4xx, 3xx, an untrusted
    certificate and the rest are not."""
    if isinstance(error, LMTLSError):
        return False
    if isinstance(error, LMHTTPStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, (LMTimeoutError, LMConnectionError))


def backoff_delay(
    retry: int,
    *,
    base: float,
    maximum: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry number ``retry`` (1-based): exponential with jitter.

    The jittered delay lies in ``[d/2, d]`` with ``d = min(maximum, base * 2**(retry-1))``;
    a server's ``Retry-After`` is a lower bound.
    """
    ceiling = min(maximum, base * (2 ** (retry - 1)))
    delay: float = ceiling * (0.5 + 0.5 * (rng or random).random())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
