"""Waiting for a deferred reply -- from a thread or a coroutine -- never hanging on a dead actor."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pykka

__all__ = ["Watch", "await_reply", "wait_reply"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_SECONDS = 1.0
DEAD_ACTOR_GRACE_SECONDS = 2.0

Watch = tuple[pykka.ActorRef[Any], Callable[[], BaseException | None]]
"""An actor the reply depends on, and what to do once it has been dead a while: return
the error to raise, or None after doing something that will settle the reply."""


class _Watcher:
    """Which watched actors have been dead longer than the grace period.

    An actor completes (or fails) the replies it holds before its thread ends; the grace
    period covers the gap between it being marked stopped and its ``on_stop``, and a
    message that reached its inbox too late to be handled (pykka drops those silently).
    """

    def __init__(self, watches: Sequence[Watch]) -> None:
        self._watches = watches
        self._dead_since: dict[int, float] = {}

    def check(self) -> None:
        """Raise the error of an actor dead past the grace period (or run its action)."""
        now = time.monotonic()
        for index, (watched, on_dead) in enumerate(self._watches):
            if watched.is_alive():
                self._dead_since.pop(index, None)
                continue
            since = self._dead_since.setdefault(index, now)
            if now - since > DEAD_ACTOR_GRACE_SECONDS:
                error = on_dead()
                if error is not None:
                    raise error
                self._dead_since[index] = now  # acted on it: another grace period


def wait_reply(future: pykka.Future[T], watches: Sequence[Watch]) -> T:
    """The future's value (or its exception), never hanging on a dead actor of ``watches``."""
    watcher = _Watcher(watches)
    while True:
        try:
            return future.get(timeout=POLL_SECONDS)
        except pykka.Timeout:
            watcher.check()


class _Watchdog:
    """One per event loop: every POLL_SECONDS, checks the actors each pending reply of
    that loop depends on (one timer for all of them, not one per call)."""

    def __init__(self) -> None:
        # No reference to the loop, and none to its timer once nothing is pending: the
        # registry must not keep a finished loop alive.
        self._pending: dict[asyncio.Future[Any], _Watcher] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, future: asyncio.Future[Any], watcher: _Watcher) -> None:
        self._pending[future] = watcher
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(POLL_SECONDS, self._tick)

    def discard(self, future: asyncio.Future[Any]) -> None:
        self._pending.pop(future, None)
        if not self._pending and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        for future, watcher in list(self._pending.items()):
            if future.done():
                continue
            try:
                watcher.check()
            except BaseException as error:
                future.set_exception(error)
        if self._pending:
            self._timer = asyncio.get_running_loop().call_later(POLL_SECONDS, self._tick)


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)


async def await_reply(future: asyncio.Future[T], watches: Sequence[Watch]) -> T:
    """The awaitable twin of :func:`wait_reply`: never blocks the loop, never hangs.

    If the awaiting task is cancelled, ``future`` is cancelled too (an outcome arriving
    later is then dropped).
    """
    loop = asyncio.get_running_loop()
    watchdog = _watchdogs.get(loop)
    if watchdog is None:
        watchdog = _watchdogs[loop] = _Watchdog()
    watchdog.add(future, _Watcher(watches))
    try:
        return await future
    finally:
        watchdog.discard(future)
        future.cancel()
