"""Completing a :data:`~dspex_actors._types.Reply`, whichever kind of waiter it names."""

from __future__ import annotations

import asyncio
import contextlib
import queue

import pykka

from dspex_actors._inbox import inbox_for
from dspex_actors._types import Answered, AsyncReply, LMResponse, Reply, ReplyTo

__all__ = ["deliver"]


def deliver(reply: Reply, outcome: LMResponse | BaseException) -> None:
    """Complete ``reply`` with ``outcome``; a reply already settled (or gone) is left alone.

    Called by the one actor that owns the call, on its own thread.
    """
    if isinstance(reply, ReplyTo):
        with contextlib.suppress(pykka.ActorDeadError):
            reply.actor.tell(Answered(reply.tag, outcome))
    elif isinstance(reply, AsyncReply):
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
            inbox_for(reply.loop).put(_settle, reply.future, outcome)
    else:
        with contextlib.suppress(queue.Full):
            if isinstance(outcome, LMResponse):
                reply.set(outcome)
            else:
                reply.set_exception(exc_info=(type(outcome), outcome, outcome.__traceback__))


def _settle(future: asyncio.Future[LMResponse], outcome: LMResponse | BaseException) -> None:
    """On the caller's loop: set the result unless the caller cancelled meanwhile."""
    if future.done():
        return
    if isinstance(outcome, LMResponse):
        future.set_result(outcome)
    else:
        future.set_exception(outcome)
