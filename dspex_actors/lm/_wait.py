"""Waiting for a deferred reply without ever hanging on a dead actor."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

__all__ = ["wait_reply"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_SECONDS = 0.25
DEAD_ACTOR_GRACE_SECONDS = 2.0


def wait_reply(
    future: pykka.Future[T],
    actor: pykka.ActorRef[Any] | Callable[[], pykka.ActorRef[Any]],
    unavailable: Callable[[], BaseException],
) -> T:
    """The future's value (or its exception), raising ``unavailable()`` if ``actor`` dies.

    ``actor`` is the actor the reply depends on, or a callable naming it when that
    changes while waiting (a Cache that forwards the call to a Client). The actor
    completes (or fails) every future it holds before its thread ends; the grace period
    covers the gap between it being marked stopped and its ``on_stop``.
    """
    dead_since: float | None = None
    while True:
        try:
            return future.get(timeout=POLL_SECONDS)
        except pykka.Timeout:
            pass
        watched = actor if isinstance(actor, pykka.ActorRef) else actor()
        if watched.is_alive():
            dead_since = None
            continue
        now = time.monotonic()
        if dead_since is None:
            dead_since = now
        elif now - dead_since > DEAD_ACTOR_GRACE_SECONDS:
            raise unavailable()
