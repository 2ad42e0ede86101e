"""At most so many LM calls start in one turn of an event loop.

A program that gathers a thousand ``acall``s makes a thousand tasks that all run in the
loop's next turn, and each prepares and formats its prompt before it first waits: the
loop's timers and its other tasks (a service's other requests) would wait for the whole
burst. :func:`take_turn` lets at most :data:`STARTS_PER_TURN` calls start per turn of a
loop; the others wait, in order, for the next turns. A lone call starts at once.
(Replies are bounded the same way on their way back: ``_inbox.PER_TURN``.)
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque

__all__ = ["STARTS_PER_TURN", "take_turn"]

STARTS_PER_TURN = 32
"""Calls one loop turn lets start; the rest start in the turns after it."""


class _Gate:
    """One loop's count of the calls started since its last turn, and those waiting.

    Used only on its loop's thread.
    """

    __slots__ = ("_next_scheduled", "_started", "_waiting")

    def __init__(self) -> None:  # no reference to the loop: the registry must not keep it
        self._started = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._next_scheduled = False

    def admit(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
        """None if a call may start now, else a future done when its turn comes."""
        if not self._next_scheduled:
            self._next_scheduled = True
            loop.call_soon(self._next_turn)
        if self._started < STARTS_PER_TURN and not self._waiting:
            self._started += 1
            return None
        waiter = loop.create_future()
        self._waiting.append(waiter)
        return waiter

    def _next_turn(self) -> None:
        """A new turn: let the next waiters start (cancelled ones are skipped)."""
        self._started = 0
        while self._waiting and self._started < STARTS_PER_TURN:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._started += 1
        if self._waiting or self._started:
            asyncio.get_running_loop().call_soon(self._next_turn)
        else:
            self._next_scheduled = False


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = (
    weakref.WeakKeyDictionary()
)


async def take_turn() -> None:
    """Wait until this call may start in the running loop's turn (at once when few do)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = _Gate()
    waiter = gate.admit(loop)
    if waiter is not None:
        await waiter
