"""Handing callbacks to an asyncio loop from other threads, one wake-up per batch.

``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call, and the loop
wakes and reads it again: at a thousand replies in flight that is a thousand wake-ups.
An :class:`LoopInbox` queues callbacks and schedules one drain for all that arrive before
the loop gets to it; they run in the order they were put, so a streamed reply's pieces
still come before its final outcome. A drain runs at most :data:`PER_TURN` of them and
leaves the rest for the loop's next turn, so a wave of a thousand replies (each waking a
task that parses its reply) never holds the loop's timers and other tasks back for the
whole wave. :func:`inbox_for` keeps one inbox per loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["PER_TURN", "LoopInbox", "inbox_for"]

PER_TURN = 64
"""Callbacks one drain runs before it yields the loop to its other work."""


class LoopInbox:
    """Thread-safe, ordered hand-off of callbacks to one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the registry must not keep a finished loop alive
        self._lock = threading.Lock()
        self._queued: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._drain_scheduled = False

    def put(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon; RuntimeError if the loop is closed."""
        with self._lock:
            loop = self._loop()
            if loop is None or loop.is_closed():  # a drain scheduled before it closed never ran
                self._queued.clear()
                self._drain_scheduled = False
                raise RuntimeError("the event loop is closed")
            self._queued.append((callback, args))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                self._queued.clear()
                self._drain_scheduled = False
                raise

    def _drain(self) -> None:
        """On the loop: run what was queued; an error is reported as asyncio reports one."""
        loop = asyncio.get_running_loop()
        with self._lock:
            count = min(len(self._queued), PER_TURN)
            batch = [self._queued.popleft() for _ in range(count)]
            if self._queued:
                loop.call_soon(self._drain)  # the rest next turn, after what is due
            else:
                self._drain_scheduled = False
        for callback, args in batch:
            try:
                callback(*args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                loop.call_exception_handler(
                    {"message": f"exception in callback {callback!r}", "exception": exc}
                )


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopInbox] = (
    weakref.WeakKeyDictionary()
)
_inboxes_lock = threading.Lock()


def inbox_for(loop: asyncio.AbstractEventLoop) -> LoopInbox:
    """The inbox of ``loop`` (made on first use, dropped with the loop)."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        with _inboxes_lock:
            inbox = _inboxes.get(loop)
            if inbox is None:
                inbox = _inboxes[loop] = LoopInbox(loop)
    return inbox
