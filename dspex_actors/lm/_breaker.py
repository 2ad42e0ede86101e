"""A pybreaker circuit breaker per endpoint and credential, fed outcomes after the fact.

``pybreaker.CircuitBreaker.call()`` holds its lock while the wrapped function runs, so
wrapping HTTP calls in it would serialise them. Here the I/O runs outside the breaker:
:meth:`EndpointBreaker.admit` is asked before a request is sent and
:meth:`EndpointBreaker.record` replays the outcome through ``breaker.call`` of a
function that only returns or re-raises it, so pybreaker still does the counting and the
state transitions. Each permit carries the breaker's generation, so an outcome of a
request sent under an older state (e.g. a late failure after the circuit half-opened)
does not count twice; in half-open state one trial is admitted at a time. Client actors
that park calls until the trial's outcome subscribe to be woken when the state changes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pybreaker

from dspex_actors._errors import (
    LMConnectionError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMTLSError,
    MalformedResponseError,
)
from dspex_actors.telemetry._otel import instruments
from dspex_actors.telemetry._spans import server_attributes

__all__ = ["EndpointBreaker", "is_endpoint_failure"]

logger = logging.getLogger(__name__)


def is_endpoint_failure(error: BaseException) -> bool:
    """Whether ``error`` says the endpoint is unhealthy.

    A 429 does not: it is backpressure (often one key's quota), retried with backoff; it
    must not cut off every other caller of the endpoint. Nor do 3xx, other 4xx and an
    untrusted certificate.
    """
    if isinstance(error, LMTLSError):
        return False
    if isinstance(error, LMHTTPStatusError):
        return error.status_code >= 500
    return isinstance(error, (LMTimeoutError, LMConnectionError, MalformedResponseError))


def _replay(error: BaseException | None) -> None:
    """The function pybreaker 'calls': it only re-raises the recorded outcome."""
    if error is not None:
        raise error


_STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}


class _StateListener(pybreaker.CircuitBreakerListener):
    """Logs state changes (the endpoint is in the breaker's name; no credentials) and sets
    the ``dspex.breaker.state`` gauge."""

    def __init__(self, endpoint: str) -> None:
        self._attributes = server_attributes(endpoint)

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else None
        level = logging.WARNING if new_state.name == pybreaker.STATE_OPEN else logging.INFO
        logger.log(level, "circuit breaker for %s: %s -> %s", cb.name, old, new_state.name)
        meters = instruments()
        if meters is not None:
            meters.breaker_state.set(_STATE_VALUES.get(new_state.name, 0), self._attributes)


class EndpointBreaker:
    """The circuit breaker of one endpoint (and credential); safe to share between Client
    actors. ``name`` says which, without the credential."""

    def __init__(
        self,
        endpoint: str,
        *,
        fail_max: int = 5,
        reset_timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name or endpoint
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            exclude=[lambda error: not is_endpoint_failure(error)],
            listeners=[_StateListener(endpoint)],
            name=self.name,
        )
        self._subscribers: list[Callable[[], None]] = []
        self._watchers: list[Callable[[str, float], None]] = []
        self._trial_failed = False
        self._reset_timeout = reset_timeout
        self._lock = threading.Lock()
        self._generation = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None
        self._rejections = 0

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from whichever thread records it) after every state change and
        every trial given back; it must only post a message, never block."""
        with self._lock:
            self._subscribers.append(wake)

    def unsubscribe(self, wake: Callable[[], None]) -> None:
        """Stop calling ``wake``."""
        with self._lock, contextlib.suppress(ValueError):
            self._subscribers.remove(wake)

    def watch(self, changed: Callable[[str, float], None]) -> None:
        """Call ``changed(state, seconds)`` when outcomes recorded here open the circuit (for
        ``seconds``) or close it; not when :meth:`open_for`/:meth:`close_now` do. For sharing
        the state with other processes."""
        with self._lock:
            self._watchers.append(changed)

    def open_for(self, seconds: float) -> None:
        """Open the circuit for ``seconds`` because another process saw the endpoint fail
        (no-op if it is already open at least that long)."""
        now = time.monotonic()
        with self._lock:
            opened_at = now - max(0.0, self._reset_timeout - seconds)
            if self._breaker.current_state == pybreaker.STATE_OPEN and (
                self._opened_at >= opened_at
            ):
                return
            self._breaker.open()
            self._opened_at = opened_at
            self._generation += 1
            self._trial_started = None
            self._trial_failed = False
        self._notify()

    def close_now(self) -> None:
        """Close the circuit because another process's trial succeeded (no-op if closed)."""
        with self._lock:
            if self._breaker.current_state == pybreaker.STATE_CLOSED:
                return
            self._breaker.close()
            self._generation += 1
            self._trial_started = None
            self._trial_failed = False
        self._notify()

    def _notify(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for wake in subscribers:
            wake()

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        return str(self._breaker.current_state)

    def admit(self) -> int | None:
        """A permit to send one request now, or None when the circuit is open.

        After the reset timeout an open circuit half-opens and admits one trial; further
        requests are refused until the trial's outcome is recorded (or the trial has
        been out for a whole reset timeout, in case its outcome was lost).
        """
        now = time.monotonic()
        with self._lock:
            state = self._breaker.current_state
            if state == pybreaker.STATE_OPEN:
                if now - self._opened_at < self._reset_timeout:
                    self._rejections += 1
                    return None
                self._breaker.half_open()
                self._generation += 1
                state = pybreaker.STATE_HALF_OPEN
            if state == pybreaker.STATE_HALF_OPEN:
                trial = self._trial_started
                if trial is not None and now - trial < self._reset_timeout:
                    self._rejections += 1
                    return None
                self._trial_started = now
            return self._generation

    def record(self, permit: int, error: BaseException | None) -> None:
        """Count the outcome of a request sent under ``permit`` (None = success)."""
        with self._lock:
            if permit != self._generation:
                return
            before = self._breaker.current_state
            if before == pybreaker.STATE_HALF_OPEN:
                self._trial_started = None
            with contextlib.suppress(BaseException):
                self._breaker.call(_replay, error)
            after = self._breaker.current_state
            changed = after != before
            if changed:
                self._generation += 1
                if after == pybreaker.STATE_OPEN:
                    self._opened_at = time.monotonic()
                self._trial_failed = after == pybreaker.STATE_OPEN and (
                    before == pybreaker.STATE_HALF_OPEN
                )
        if changed:
            self._notify()
            with self._lock:
                watchers = list(self._watchers)
            if after in (pybreaker.STATE_OPEN, pybreaker.STATE_CLOSED):
                for watcher in watchers:
                    watcher(str(after), self._reset_timeout)

    def release(self, permit: int) -> None:
        """Give back a permit whose outcome will never be known (its caller gave up)."""
        with self._lock:
            freed = permit == self._generation and self._breaker.current_state == (
                pybreaker.STATE_HALF_OPEN
            )
            if freed:
                self._trial_started = None
        if freed:
            self._notify()

    @property
    def trial_failed(self) -> bool:
        """Whether the circuit opened again because its half-open trial failed: the
        endpoint is down, not blipping, and calls stop waiting for it."""
        return self._trial_failed

    def retry_in(self) -> float:
        """Seconds until an open circuit half-opens (0 when not open)."""
        with self._lock:
            if self._breaker.current_state != pybreaker.STATE_OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._reset_timeout - time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        """State and counters for ``ActorSystem.stats()``."""
        with self._lock:
            return {
                "name": self.name,
                "endpoint": self.endpoint,
                "state": str(self._breaker.current_state),
                "fail_counter": int(self._breaker.fail_counter),
                "fail_max": int(self._breaker.fail_max),
                "reset_timeout": self._reset_timeout,
                "rejections": self._rejections,
            }
