"""Waiting for a deferred reply without ever hanging on a dead actor."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pykka

__all__ = ["Watch", "wait_reply"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_SECONDS = 1.0
DEAD_ACTOR_GRACE_SECONDS = 2.0

Watch = tuple[pykka.ActorRef[Any], Callable[[], BaseException | None]]
"""An actor the reply depends on, and what to do once it has been dead a while: return
the error to raise, or None after doing something that will settle the reply."""


def wait_reply(
    future: pykka.Future[T],
    actor: pykka.ActorRef[Any] | Sequence[Watch],
    unavailable: Callable[[], BaseException | None] | None = None,
) -> T:
    """The future's value (or its exception), never hanging on a dead actor.

    ``actor`` is the actor the reply depends on (then ``unavailable()`` is the error
    raised once it is dead), or several :data:`Watch` pairs. An actor completes (or
    fails) the replies it holds before its thread ends; the grace period covers the gap
    between it being marked stopped and its ``on_stop``, and a message that reached its
    inbox too late to be handled (pykka drops those silently).
    """
    if isinstance(actor, pykka.ActorRef):
        assert unavailable is not None
        watches: Sequence[Watch] = [(actor, unavailable)]
    else:
        watches = actor
    dead_since: dict[int, float] = {}
    while True:
        try:
            return future.get(timeout=POLL_SECONDS)
        except pykka.Timeout:
            pass
        now = time.monotonic()
        for index, (watched, on_dead) in enumerate(watches):
            if watched.is_alive():
                dead_since.pop(index, None)
                continue
            since = dead_since.setdefault(index, now)
            if now - since > DEAD_ACTOR_GRACE_SECONDS:
                error = on_dead()
                if error is not None:
                    raise error
                dead_since[index] = now  # acted on it: give the reply another grace period
